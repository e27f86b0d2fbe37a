"""Choosing a week's signals and grouping them in sections: pure, so it tests without a database."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from newsletter.models import Section, Signal

UNCATEGORISED = "Other"
LEAD_TITLE = "Lead story"


def strength(signal: Signal) -> tuple[int, int, int, int]:
    """Strongest first: signal score, then structural impact, then confidence, then newest."""
    return (
        signal.signal_score or 0,
        signal.structural_impact or 0,
        signal.editorial_confidence or 0,
        int(signal.published.timestamp()),
    )


def select_signals(
    candidates: Iterable[Signal],
    *,
    already_sent: set[int],
    pinned: set[int] = frozenset(),  # type: ignore[assignment]
    dropped: set[int] = frozenset(),  # type: ignore[assignment]
    min_score: int = 0,
    limit: int = 12,
    include_unscored: bool = False,
) -> list[Signal]:
    """Pinned signals always, then the strongest eligible ones, up to the limit.

    A signal the editor has not scored is not eligible unless `include_unscored`: a bare
    abstract is not a read (pin one to send it anyway).
    """
    pool = [s for s in candidates if s.id not in already_sent and s.id not in dropped]
    chosen = sorted((s for s in pool if s.id in pinned), key=strength, reverse=True)

    def eligible(signal: Signal) -> bool:
        if signal.signal_score is None:
            return include_unscored and min_score <= 0
        return signal.signal_score >= min_score

    rest = sorted(
        (s for s in pool if s.id not in pinned and eligible(s)), key=strength, reverse=True
    )
    return (chosen + rest)[: max(limit, len(chosen))]


def group_sections(signals: Sequence[Signal], order: Sequence[str]) -> list[Section]:
    """Sections in the configured order, unknown categories after them alphabetically.

    Categories match whatever their case ("energy" joins "Energy"); a configured section keeps
    its configured spelling, another the first spelling seen.
    """
    rank = {name.lower(): i for i, name in enumerate(order)}
    titles = {name.lower(): name for name in order}
    groups: dict[str, list[Signal]] = {}
    for signal in signals:
        name = (signal.category or "").strip() or UNCATEGORISED
        titles.setdefault(name.lower(), name)
        groups.setdefault(name.lower(), []).append(signal)
    keys = sorted(groups, key=lambda key: (rank.get(key, len(rank)), key))
    return [Section(titles[key], tuple(groups[key])) for key in keys]


def arrange(signals: Sequence[Signal], order: Sequence[str]) -> list[Section]:
    """The dispatch's running order: the week's strongest signal first as its lead, whatever
    its section, then the others by section (see group_sections)."""
    if not signals:
        return []
    lead = max(signals, key=strength)
    rest = [s for s in signals if s is not lead]
    return [Section(LEAD_TITLE, (lead,), lead=True), *group_sections(rest, order)]


def default_subject(signals: Sequence[Signal], name: str, issue_number: int) -> str:
    if not signals:  # an empty draft holds no issue number yet (it is stored as -id)
        return f"{name} #{issue_number}" if issue_number > 0 else name
    lead = signals[0].title
    more = len(signals) - 1
    subject = f"{lead}" + (f" + {more} more" if more else "")
    return subject if len(subject) <= 90 else subject[:87].rstrip() + "…"


def default_preheader(signals: Sequence[Signal]) -> str:
    titles = [s.title for s in signals[1:4]]
    if not titles:
        return signals[0].why_now or signals[0].summary_text[:120] if signals else ""
    text = "Also: " + "; ".join(titles)
    return text if len(text) <= 140 else text[:137].rstrip() + "…"
