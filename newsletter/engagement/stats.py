"""The editor's figures for one sent dispatch: who it reached, who left, and which signals
readers followed, human clicks apart from automated ones (scanners, previews, HEAD requests).

In aggregate mode there is no "unique clickers" figure: nothing tells two clicks of one reader
from clicks of two readers, which is the point. In per-reader mode each signal also shows how
many different readers clicked it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from newsletter.dispatch.build import load_dispatch, no_dispatch
from newsletter.dispatch.render import frozen_rendering
from newsletter.errors import DispatchError
from newsletter.settings import Settings
from newsletter.store import Store
from newsletter.weeks import Week

#: what the report counts an unsubscribe, complaint or bounce against: the week after sending
WINDOW = timedelta(days=7)
GONE_OUT = ("sending", "partly sent", "sent")
OPENS_LABEL = "opens (inflated by privacy proxies)"


@dataclass(frozen=True)
class LinkFigures:
    key: str
    signal_id: int | None
    kind: str
    label: str
    url: str
    human: int
    automated: int
    queued: int


@dataclass(frozen=True)
class SignalFigures:
    signal_id: int
    title: str
    category: str
    score: int | None
    position: int
    human: int
    automated: int
    readers: int | None  # distinct readers with a human click (per-reader mode only)
    links: tuple[LinkFigures, ...]


@dataclass(frozen=True)
class DispatchFigures:
    week: str
    issue_number: int
    subject: str
    status: str
    tracking: str  # how the dispatch was sent: off / aggregate / per-reader
    window_start: str | None
    window_end: str | None
    recipients: int
    sent: int
    delivered: int
    failed: int
    unknown: int
    bounces: int
    unsubscribes: int
    complaints: int
    human: int
    automated: int
    queued: int  # hits still being classified (the last few seconds')
    opens: int | None  # None: no open pixel in this dispatch
    signals: tuple[SignalFigures, ...]  # ranked, most human clicks first
    links: tuple[LinkFigures, ...]  # ranked; every tracked link but the pixel

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["opens_label"] = OPENS_LABEL
        return data


def latest_week(store: Store, *, before: str | None = None) -> str | None:
    """The newest dispatch that has gone out (before week `before`, when given)."""
    for row in store.dispatches.list():  # newest first
        if row["status"] in GONE_OUT and (before is None or row["week"] < before):
            return str(row["week"])
    return None


def _label(kind: str, url: str, source: str | None) -> str:
    if kind == "title":
        return "title"
    if kind == "read":
        return f"Read at {source or 'the source'}"
    if kind == "view":
        return "View in browser"
    return f"link in summary ({urlsplit(url).hostname or url})"


def figures(store: Store, settings: Settings, week: Week) -> DispatchFigures:
    """Everything `newsletter stats` shows for the week's dispatch."""
    dispatch = load_dispatch(store, settings, week)
    if dispatch is None:
        raise no_dispatch(store, settings, week)
    if dispatch.status not in GONE_OUT:
        raise DispatchError(
            f"dispatch {week} has not gone out yet ({dispatch.status}): nothing to count"
        )
    frozen = frozen_rendering(dispatch)
    rows = store.clicks.per_link(dispatch.id)
    tracking = "off"
    if rows:
        tracking = "per-reader" if frozen is not None and frozen.per_reader_links else "aggregate"
    counts = store.deliveries.counts(dispatch.id)
    start = store.clicks.first_delivery(dispatch.id)
    end = None
    answers = {"unsubscribed": 0, "complained": 0, "bounced": 0}
    if start:
        end = (datetime.fromisoformat(start) + WINDOW).astimezone(UTC).isoformat(timespec="seconds")
        answers = store.clicks.readers_answers(dispatch.id, start, end)
    readers = store.clicks.readers_per_signal(dispatch.id) if tracking == "per-reader" else {}
    links: list[LinkFigures] = []
    opens: int | None = None
    by_signal: dict[int, list[LinkFigures]] = {}
    for row in rows:
        if row["kind"] == "open":
            opens = row["human"] + row["automated"] + row["queued"]
            continue
        signal = next((s for s in dispatch.signals if s.id == row["signal_id"]), None)
        link = LinkFigures(
            key=row["key"],
            signal_id=row["signal_id"],
            kind=row["kind"],
            label=_label(row["kind"], row["url"], signal.source_label if signal else None),
            url=row["url"],
            human=row["human"],
            automated=row["automated"],
            queued=row["queued"],
        )
        links.append(link)
        if row["signal_id"] is not None:
            by_signal.setdefault(row["signal_id"], []).append(link)
    signals = [
        SignalFigures(
            signal_id=s.id,
            title=s.title,
            category=(s.category or "").strip() or "Other",
            score=s.signal_score,
            position=position,
            human=sum(link.human for link in by_signal.get(s.id, ())),
            automated=sum(link.automated for link in by_signal.get(s.id, ())),
            readers=readers.get(s.id, 0) if tracking == "per-reader" else None,
            links=tuple(by_signal.get(s.id, ())),
        )
        for position, s in enumerate(dispatch.signals, start=1)
    ]
    signals.sort(key=lambda s: (-s.human, -s.automated, s.position))
    order = {link.key: n for n, link in enumerate(links)}
    links.sort(key=lambda link: (-link.human, -link.automated, order[link.key]))
    sent = counts["sent"]
    return DispatchFigures(
        week=str(week),
        issue_number=dispatch.issue_number,
        subject=dispatch.subject,
        status=dispatch.status,
        tracking=tracking,
        window_start=start,
        window_end=end,
        recipients=sum(n for status, n in counts.items() if status != "skipped"),
        sent=sent,
        delivered=max(0, sent - answers["bounced"]),
        failed=counts["failed"],
        unknown=counts["unknown"],
        bounces=answers["bounced"],
        unsubscribes=answers["unsubscribed"],
        complaints=answers["complained"],
        human=sum(link.human for link in links),
        automated=sum(link.automated for link in links),
        queued=sum(link.queued for link in links),
        opens=opens,
        signals=tuple(signals),
        links=tuple(links),
    )


TRACKING_WORDS = {
    "off": "off: links went out as they are, nothing is counted",
    "aggregate": "aggregate: clicks per link, nothing about any reader",
    "per-reader": "per-reader: clicks per link, and which reader clicked (stated in the footer)",
}


def _title(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"


def to_text(f: DispatchFigures) -> str:
    """The report as `newsletter stats` prints it."""
    lines = [
        f"Dispatch {f.week} · Issue {f.issue_number} · {f.status} · {f.subject}",
        f"Tracking: {TRACKING_WORDS[f.tracking]}",
    ]
    if f.window_start and f.window_end:
        lines.append(f"The week after sending: {f.window_start} to {f.window_end}")
    lines += [
        "",
        f"Deliveries: {f.recipients:,} recipients · {f.sent:,} sent · {f.delivered:,} delivered"
        f" · {f.failed:,} failed · {f.unknown:,} unknown · {f.bounces:,} bounced",
        f"That week: {f.unsubscribes:,} unsubscribed · {f.complaints:,} complained",
        f"Clicks: {f.human:,} human · {f.automated:,} automated (scanners, previews, HEAD)"
        + (f" · {f.queued:,} still being classified" if f.queued else ""),
        "Opens: not counted (NEWSLETTER_TRACK_OPENS is off)"
        if f.opens is None
        else f"{OPENS_LABEL.capitalize()}: {f.opens:,}",
    ]
    if f.tracking == "off":
        return "\n".join(lines) + "\n"
    readers = f.tracking == "per-reader"
    lines += ["", "Clicks per signal, most followed first:"]
    head = f"  {'#':>2}  {'human':>6}  {'auto':>6}" + (f"  {'readers':>7}" if readers else "")
    lines.append(head + "  signal")
    for rank, s in enumerate(f.signals, start=1):
        score = f", score {s.score}" if s.score is not None else ""
        extra = f"  {s.readers or 0:>7,}" if readers else ""
        lines.append(
            f"  {rank:>2}  {s.human:>6,}  {s.automated:>6,}{extra}  {_title(s.title)}"
            f" ({s.category}{score})"
        )
    lines += ["", "Clicks per link, most followed first:"]
    titles = {s.signal_id: s.title for s in f.signals}
    for rank, link in enumerate(f.links, start=1):
        about = f" · {_title(titles[link.signal_id], 40)}" if link.signal_id in titles else ""
        lines.append(
            f"  {rank:>2}  {link.human:>6,}  {link.automated:>6,}  {link.label}{about}"
            f"\n              {link.url}"
        )
    return "\n".join(lines) + "\n"
