"""Building, reading and approving a week's dispatch (the orchestration around `select`)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from newsletter.dispatch.select import (
    arrange,
    default_preheader,
    default_subject,
    select_signals,
    strength,
)
from newsletter.errors import DispatchError
from newsletter.models import Dispatch, Section
from newsletter.settings import Settings
from newsletter.store import Store
from newsletter.store.dispatches import FROZEN
from newsletter.weeks import Week


def current_week(settings: Settings, now: datetime | None = None) -> Week:
    return Week.containing(now or datetime.now(UTC), settings.timezone)


def no_dispatch(store: Store, settings: Settings, week: Week) -> DispatchError:
    """The error for a week that has no dispatch: which weeks have one and how to pick one
    (`--week`), and whether this week has signals to build one from."""
    others = [row for row in store.dispatches.list() if row["week"] != str(week)]
    start, end = week.bounds(settings.timezone)
    has_signals = bool(store.signals.list(start=start, end=end))
    build = f"`newsletter dispatch build --week {week}`"
    here = (
        f"build it with {build}"
        if has_signals
        else f"{week} has no signals to build one from (`newsletter collect` fetches them)"
    )
    if not others:
        return DispatchError(f"no dispatch for {week} and none for any other week: {here}")
    shown = ", ".join(f"{row['week']} ({row['status']})" for row in others[:5])
    more = f" and {len(others) - 5} more" if len(others) > 5 else ""
    return DispatchError(
        f"no dispatch for {week}; dispatches exist for {shown}{more}:"
        f" pick one with --week {others[0]['week']}" + (f", or {here}" if has_signals else "")
    )


def build_dispatch(store: Store, settings: Settings, week: Week) -> Dispatch:
    """Create or refresh the week's draft; a sent dispatch is frozen and refuses."""
    row = store.dispatches.get(str(week))
    if row and row["status"] in FROZEN:
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
            include_unscored=settings.select_unscored,
        )
        sections = arrange(chosen, settings.sections)
        ordered = [s for section in sections for s in section.signals]
        store.dispatches.set_selection(row["id"], [(s.id, s.category or "") for s in ordered])
        store.dispatches.hold_issue_number(row["id"], bool(ordered))
        row = store.dispatches.get_by_id(row["id"]) or row
        changes = {}
        strongest = sorted(chosen, key=strength, reverse=True)  # a weak pinned one never leads
        if not row["subject_set"]:
            changes["subject"] = default_subject(strongest, settings.name, row["issue_number"])
        if not row["preheader_set"]:
            changes["preheader"] = default_preheader(strongest)
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
    sections: list[Section] = arrange([s for s in signals if s], settings.sections)
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
        raise no_dispatch(store, settings, week)
    if dispatch.status in FROZEN:
        raise DispatchError(f"dispatch {week} is already {dispatch.status}")
    if not dispatch.signals:
        raise DispatchError(f"dispatch {week} has no signals; nothing to approve")
    store.dispatches.update(dispatch.id, status="approved")
    store.events.log("dispatch.approved", "dispatch", dispatch.id, week=str(week))
    return load_dispatch(store, settings, week)  # type: ignore[return-value]


def _editable(store: Store, settings: Settings, week: Week) -> Dispatch:
    """The week's draft (built first if there is none); a frozen dispatch refuses changes."""
    dispatch = load_dispatch(store, settings, week)
    if dispatch is None:
        dispatch = build_dispatch(store, settings, week)
    if dispatch.status in FROZEN:
        raise DispatchError(f"dispatch {week} is {dispatch.status}: it is frozen")
    return dispatch


def choose(
    store: Store,
    settings: Settings,
    week: Week,
    signal_ids: Iterable[int],
    *,
    pin: bool = False,
    drop: bool = False,
    undo: bool = False,
) -> Dispatch:
    """Pin or drop signals (or undo either), then rebuild: a rebuild keeps every choice."""
    if pin == drop:
        raise ValueError("choose either pin or drop")
    dispatch = _editable(store, settings, week)
    ids = list(dict.fromkeys(signal_ids))
    missing = [i for i in ids if store.signals.get(i) is None]
    if missing:
        raise DispatchError(f"no signal with id {', '.join(map(str, missing))}")
    pinned, dropped = store.dispatches.editor_choices(dispatch.id)
    with store.transaction():
        for signal_id in ids:
            is_pinned, is_dropped = signal_id in pinned, signal_id in dropped
            if undo:
                is_pinned, is_dropped = is_pinned and not pin, is_dropped and not drop
            else:  # pinning a dropped signal brings it back, and the other way round
                is_pinned, is_dropped = pin, drop
            store.dispatches.set_choice(
                dispatch.id, signal_id, pinned=is_pinned, dropped=is_dropped
            )
        what = ("unpin" if undo else "pin") if pin else ("undrop" if undo else "drop")
        store.events.log(f"dispatch.{what}", "dispatch", dispatch.id, signals=ids)
    return build_dispatch(store, settings, week)


MAX_SUBJECT = 200
MAX_PREHEADER = 250
MAX_NOTE = 10_000


def edit_text(
    store: Store,
    settings: Settings,
    week: Week,
    *,
    subject: str | None = None,
    preheader: str | None = None,
    note: str | None = None,
) -> Dispatch:
    """Set the subject, preheader or editor's note; an empty value returns to the generated one."""
    changes: dict[str, object] = {}
    for field_name, value, limit in (
        ("subject", subject, MAX_SUBJECT),
        ("preheader", preheader, MAX_PREHEADER),
    ):
        if value is None:
            continue
        value = value.strip()
        if any(ch in value for ch in "\r\n\x00"):
            raise DispatchError(f"{field_name}: must be one line (no line breaks)")
        if len(value) > limit:
            raise DispatchError(f"{field_name}: at most {limit} characters, got {len(value)}")
        changes[field_name] = value
        changes[f"{field_name}_set"] = int(bool(value))
    if note is not None:
        if len(note) > MAX_NOTE:
            raise DispatchError(f"note: at most {MAX_NOTE} characters, got {len(note)}")
        changes["note"] = note.strip() or None
    dispatch = _editable(store, settings, week)
    if not changes:
        return dispatch
    if dispatch.status == "approved":
        changes["status"] = "draft"  # the editor approves what will be sent
    store.dispatches.update(dispatch.id, **changes)
    store.events.log("dispatch.edited", "dispatch", dispatch.id, fields=sorted(changes))
    # generated texts (an empty value given) come back with the rebuild
    return build_dispatch(store, settings, week)


def editor_choices(store: Store, dispatch: Dispatch) -> tuple[set[int], set[int]]:
    """Pinned and dropped signal ids, for `dispatch show`."""
    return store.dispatches.editor_choices(dispatch.id)
