"""The pure selection stage: which signals, in what order, in which sections, under what subject."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from newsletter.dispatch.select import (
    LEAD_TITLE,
    arrange,
    default_preheader,
    default_subject,
    group_sections,
    select_signals,
)
from newsletter.models import Signal

BASE = datetime(2026, 6, 9, tzinfo=UTC)


def sig(i: int, score: int | None, impact: int | None = None, confidence: int | None = None,
        category: str | None = "AI", age_h: int = 0) -> Signal:  # fmt: skip
    return Signal(
        id=i,
        title=f"Signal {i}",
        url=f"https://example.org/{i}",
        published=BASE - timedelta(hours=age_h),
        category=category,
        signal_score=score,
        structural_impact=impact,
        editorial_confidence=confidence,
    )


def ids(signals: list[Signal]) -> list[int]:
    return [s.id for s in signals]


def test_strongest_first_with_tie_breaks() -> None:
    pool = [
        sig(1, 70, 50, 90),
        sig(2, 80),
        sig(3, 70, 60, 10),
        sig(4, 70, 50, 95),
        sig(5, 70, 50, 95, age_h=5),  # same scores, older
        sig(6, None),
    ]
    chosen = select_signals(pool, already_sent=set(), include_unscored=True)
    assert ids(chosen) == [2, 3, 4, 5, 1, 6]


def test_unscored_signals_are_not_selected_unless_pinned_or_allowed() -> None:
    pool = [sig(1, 40), sig(2, None), sig(3, 0), sig(4, None)]
    assert ids(select_signals(pool, already_sent=set())) == [1, 3]  # a score of 0 is a score
    assert ids(select_signals(pool, already_sent=set(), pinned={4})) == [4, 1, 3]
    allowed = select_signals(pool, already_sent=set(), include_unscored=True)
    assert ids(allowed) == [1, 2, 3, 4]  # unscored ranks as 0, then by date
    # with a minimum score an unscored signal never qualifies, allowed or not
    assert ids(select_signals(pool, already_sent=set(), include_unscored=True, min_score=1)) == [1]


def test_the_strongest_signal_leads_whatever_its_section() -> None:
    signals = [sig(1, 60, category="AI"), sig(2, 70, category="AI"),
               sig(3, 95, category="Science"), sig(4, 80, category="Markets")]  # fmt: skip
    sections = arrange(signals, ["AI", "Markets", "Science"])
    assert [(s.title, s.lead) for s in sections] == [
        (LEAD_TITLE, True),
        ("AI", False),
        ("Markets", False),
    ]
    assert [ids(list(s.signals)) for s in sections] == [[3], [1, 2], [4]]  # order kept
    # Science had only the lead: no empty section is left behind
    assert arrange([], ["AI"]) == []
    assert [s.title for s in arrange([sig(5, None)], ["AI"])] == [LEAD_TITLE]


def test_minimum_score_limit_sent_and_dropped() -> None:
    pool = [sig(i, 100 - i) for i in range(1, 11)]
    chosen = select_signals(pool, already_sent={1}, dropped={2}, min_score=93, limit=3)
    assert ids(chosen) == [3, 4, 5]
    assert ids(select_signals(pool, already_sent=set(), min_score=95)) == [1, 2, 3, 4, 5]


def test_pins_ignore_score_and_limit_but_not_what_was_sent() -> None:
    pool = [sig(1, 90), sig(2, 80), sig(3, 10), sig(4, None), sig(5, 5)]
    chosen = select_signals(pool, already_sent={5}, pinned={3, 4, 5}, min_score=50, limit=2)
    assert ids(chosen) == [3, 4]  # pins fill the limit; a sent pin never returns
    assert ids(select_signals(pool, already_sent=set(), pinned={3}, limit=3)) == [3, 1, 2]


def test_sections_in_configured_order_then_alphabetical() -> None:
    signals = [sig(1, 90, category="zoology"), sig(2, 80, category="energy"),
               sig(3, 70, category=None), sig(4, 60, category="Biology"),
               sig(5, 50, category="ENERGY")]  # fmt: skip
    sections = group_sections(signals, ["AI", "Energy"])
    # a category matches whatever its case; a signal without one lands in "Other"
    assert [s.title for s in sections] == ["Energy", "Biology", "Other", "zoology"]
    assert [ids(list(s.signals)) for s in sections] == [[2, 5], [4], [3], [1]]
    assert [s.title for s in group_sections(signals, [])][:2] == ["Biology", "energy"]


def test_generated_subject_and_preheader() -> None:
    signals = [replace(sig(i, 90 - i), title=f"Title {i}") for i in range(5)]
    assert default_subject(signals, "The Brief", 3) == "Title 0 + 4 more"
    assert default_subject(signals[:1], "The Brief", 3) == "Title 0"
    assert default_subject([], "The Brief", 3) == "The Brief #3"
    long = [replace(signals[0], title="word " * 40)]
    subject = default_subject(long, "The Brief", 1)
    assert len(subject) <= 90 and subject.endswith("…")
    assert default_preheader(signals) == "Also: Title 1; Title 2; Title 3"
    one = [replace(signals[0], why_now="Because now.")]
    assert default_preheader(one) == "Because now."
    assert default_preheader([]) == ""
