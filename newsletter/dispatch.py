"""Building, reading and approving a week's dispatch (the orchestration around `select`)."""

from __future__ import annotations

from datetime import UTC, datetime

from newsletter.errors import DispatchError
from newsletter.models import Dispatch, Section
from newsletter.select import default_preheader, default_subject, group_sections, select_signals
from newsletter.settings import Settings
from newsletter.store import Store
from newsletter.weeks import Week


def current_week(settings: Settings, now: datetime | None = None) -> Week:
    return Week.containing(now or datetime.now(UTC), settings.timezone)


def build_dispatch(store: Store, settings: Settings, week: Week) -> Dispatch:
    """Create or refresh the week's draft; a sent dispatch is frozen and refuses."""
    row = store.dispatches.get(str(week))
    if row and row["status"] in ("sending", "sent"):
        raise DispatchError(
            f"dispatch {week} is {row['status']}: it is frozen and cannot be rebuilt"
        )
    with store.transaction():
        row = row or store.dispatches.create(str(week))
        pinned, dropped = store.dispatches.editor_choices(row["id"])
        start, end = week.bounds(settings.timezone)
        candidates = {s.id: s for s in store.signals.published_between(start, end)}
        for signal_id in pinned - candidates.keys():
            signal = store.signals.get(signal_id)
            if signal:
                candidates[signal_id] = signal
        chosen = select_signals(
            candidates.values(),
            already_sent=store.signals.sent_ids(excluding_dispatch=row["id"]),
            pinned=pinned,
            dropped=dropped,
            min_score=settings.min_score,
            limit=settings.max_signals,
        )
        sections = group_sections(chosen, settings.sections)
        ordered = [s for section in sections for s in section.signals]
        store.dispatches.set_selection(row["id"], [(s.id, s.category or "") for s in ordered])
        changes = {}
        if not row["subject_set"]:
            changes["subject"] = default_subject(chosen, settings.name, row["issue_number"])
        if not row["preheader_set"]:
            changes["preheader"] = default_preheader(chosen)
        if row["status"] == "approved":
            changes["status"] = "draft"  # the content changed: the editor approves again
        if changes:
            store.dispatches.update(row["id"], **changes)
    dispatch = load_dispatch(store, settings, week)
    assert dispatch is not None
    return dispatch


def load_dispatch(store: Store, settings: Settings, week: Week) -> Dispatch | None:
    row = store.dispatches.get(str(week))
    if row is None:
        return None
    signals = [
        store.signals.get(signal_id) for signal_id, _ in store.dispatches.selection(row["id"])
    ]
    sections: list[Section] = group_sections([s for s in signals if s], settings.sections)
    return Dispatch(
        id=row["id"],
        week=row["week"],
        issue_number=row["issue_number"],
        status=row["status"],
        subject=row["subject"] or "",
        preheader=row["preheader"] or "",
        note=row["note"],
        sections=tuple(sections),
        html=row["html"],
        text=row["text"],
        slot_nonce=row["slot_nonce"],
    )


def approve(store: Store, settings: Settings, week: Week) -> Dispatch:
    dispatch = load_dispatch(store, settings, week)
    if dispatch is None:
        raise DispatchError(
            f"no dispatch for {week}: run `newsletter dispatch build --week {week}`"
        )
    if dispatch.status in ("sending", "sent"):
        raise DispatchError(f"dispatch {week} is already {dispatch.status}")
    if not dispatch.signals:
        raise DispatchError(f"dispatch {week} has no signals; nothing to approve")
    store.dispatches.update(dispatch.id, status="approved")
    store.events.log("dispatch.approved", "dispatch", dispatch.id, week=str(week))
    return load_dispatch(store, settings, week)  # type: ignore[return-value]
