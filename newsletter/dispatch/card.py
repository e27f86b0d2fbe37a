"""One signal card: the fields of the brief's signal pages, in the seed's order, with the seed's
labels, and what a signal lacks left out. The email (HTML and text) and the site's pages are
both rendered from this one view of a signal, so they cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from markupsafe import Markup

from newsletter.models import Signal
from newsletter.settings import Settings
from newsletter.signals.shorten import shorten_summary

KIND = "Signal"
WHY_HEADING = "Why this matters"
WINNERS_HEADING = "Winners"
LOSERS_HEADING = "Losers"
EFFECTS_HEADING = "Second-order effects"
ORIGINAL_HEADING = "Original report"
NO_CATEGORY = "Other"


@dataclass(frozen=True)
class Line:
    """A labelled paragraph ("Why now", "Direct", ...)."""

    label: str
    text: str


@dataclass(frozen=True)
class Card:
    signal: Signal
    category: str
    published: datetime  # in the publication's timezone
    when: str  # "Jun 9, 2026, 4:00 AM"
    score: str | None  # "Signal 75"
    horizon: str | None  # "Medium term"
    title: str
    source: str | None  # "arXiv cs.LG"
    source_url: str
    page_url: str | None  # the signal's public page, when it has one
    summary_html: Markup
    summary_text: str
    why: tuple[Line, ...]
    winners: tuple[str, ...]
    losers: tuple[str, ...]
    effects: tuple[Line, ...]
    scores: str | None  # "Editorial confidence: 90 / 100 · Structural impact: 60 / 100"
    read_at: str  # "Read at arXiv cs.LG"

    @property
    def kicker(self) -> tuple[str, ...]:
        """SIGNAL · AI · Jun 9, 2026, 4:00 AM · Signal 75 · Medium term"""
        parts = (KIND, self.category, self.when, self.score, self.horizon)
        return tuple(p for p in parts if p)

    @property
    def date(self) -> str:
        return f"{self.published:%b} {self.published.day}, {self.published.year}"

    @property
    def description(self) -> str:
        """One line about the signal (link previews, the stream's entries)."""
        important = next((line.text for line in self.why if line.label == WHY_LABELS[1]), "")
        return important or next((line.text for line in self.why), "") or self.summary_text


WHY_LABELS = ("Why now", "Why it’s important", "What changes")
EFFECT_LABELS = ("Direct", "Second", "Third")


def moment(when: datetime) -> str:
    """`Jun 9, 2026, 4:00 AM`, the seed's kicker date (no locale: %p is locale-dependent)."""
    hour = when.hour % 12 or 12
    noon = "AM" if when.hour < 12 else "PM"
    return f"{when:%b} {when.day}, {when.year}, {hour}:{when:%M} {noon}"


def summary(signal: Signal, settings: Settings) -> tuple[Markup, str]:
    """The summary a card shows (the email's and the site's alike), as sanitised HTML and as
    plain text, shortened at a word past NEWSLETTER_SUMMARY_LENGTH (the store keeps it all)."""
    shown = shorten_summary(signal, settings.summary_length)
    # sanitised at collection or import (signals.sanitise): never raw feed HTML
    return Markup(shown.summary_html), shown.summary_text  # noqa: S704


def page_url(signal: Signal, settings: Settings) -> str | None:
    """The signal's page, for a signal that is (or will be, once sent) public."""
    if not signal.slug or not signal.is_annotated or signal.publication == "unpublished":
        return None
    return f"{settings.public_url}/signals/{signal.slug}/"


def _lines(labels: tuple[str, ...], values: tuple[str | None, ...]) -> tuple[Line, ...]:
    pairs = zip(labels, values, strict=True)
    return tuple(Line(label, v.strip()) for label, v in pairs if v and v.strip())


def make_card(signal: Signal, settings: Settings) -> Card:
    published = signal.published.astimezone(settings.timezone)
    html, text = summary(signal, settings)
    scores = [
        f"{label}: {value} / 100"
        for label, value in (
            ("Editorial confidence", signal.editorial_confidence),
            ("Structural impact", signal.structural_impact),
        )
        if value is not None
    ]
    source = (signal.source_label or "").strip() or None
    return Card(
        signal=signal,
        category=(signal.category or "").strip() or NO_CATEGORY,
        published=published,
        when=moment(published),
        score=None if signal.signal_score is None else f"Signal {signal.signal_score}",
        horizon=signal.horizon_label,
        title=signal.title,
        source=source,
        source_url=signal.url,
        page_url=page_url(signal, settings),
        summary_html=html,
        summary_text=text,
        why=_lines(WHY_LABELS, (signal.why_now, signal.why_important, signal.what_changes)),
        winners=tuple(w for w in signal.winners if w.strip()),
        losers=tuple(w for w in signal.losers if w.strip()),
        effects=_lines(
            EFFECT_LABELS, (signal.effects_direct, signal.effects_second, signal.effects_third)
        ),
        scores=" · ".join(scores) or None,
        read_at=f"Read at {source or 'the source'}",
    )
