"""Plain data types shared by every stage. No I/O here."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

HORIZONS = ("short term", "medium term", "long term")

# The editor's read of a signal: never overwritten by a feed re-fetch.
EDITORIAL_FIELDS = (
    "category",
    "signal_score",
    "horizon",
    "why_now",
    "why_important",
    "what_changes",
    "winners",
    "losers",
    "effects_direct",
    "effects_second",
    "effects_third",
    "editorial_confidence",
    "structural_impact",
    "notes",
)
LIST_FIELDS = ("winners", "losers")
SCORE_FIELDS = ("signal_score", "editorial_confidence", "structural_impact")


@dataclass(frozen=True)
class FeedItem:
    """One entry of a feed after parsing and sanitising, before it meets the database."""

    title: str
    url: str
    guid: str | None = None
    link: str | None = None
    published: datetime | None = None
    summary_html: str = ""
    summary_text: str = ""
    source_label: str | None = None
    category: str | None = None
    arxiv_id: str | None = None
    announce_type: str | None = None


@dataclass(frozen=True)
class Signal:
    id: int
    title: str
    url: str
    published: datetime
    source_label: str | None = None
    summary_html: str = ""
    summary_text: str = ""
    notes: str | None = None
    category: str | None = None
    signal_score: int | None = None
    horizon: str | None = None
    why_now: str | None = None
    why_important: str | None = None
    what_changes: str | None = None
    winners: tuple[str, ...] = ()
    losers: tuple[str, ...] = ()
    effects_direct: str | None = None
    effects_second: str | None = None
    effects_third: str | None = None
    editorial_confidence: int | None = None
    structural_impact: int | None = None
    arxiv_id: str | None = None
    announce_type: str | None = None
    guid: str | None = None
    draft_id: int | None = None  # the accepted machine draft this read began as, if any
    # the signal stream: the page's slug, and the editor's publish / unpublish choice
    slug: str | None = None
    publication: str | None = None
    updated_at: str | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Signal:
        known = cls.__dataclass_fields__
        values = {k: v for k, v in row.items() if k in known}
        for name in LIST_FIELDS:
            values[name] = tuple(json.loads(row[name])) if row.get(name) else ()
        values["published"] = datetime.fromisoformat(row["published"])
        values["summary_html"] = row.get("summary_html") or ""
        values["summary_text"] = row.get("summary_text") or ""
        return cls(**values)

    @property
    def horizon_label(self) -> str | None:
        return self.horizon.capitalize() if self.horizon else None

    @property
    def has_why(self) -> bool:
        return bool(self.why_now or self.why_important or self.what_changes)

    @property
    def has_effects(self) -> bool:
        return bool(self.effects_direct or self.effects_second or self.effects_third)

    @property
    def is_annotated(self) -> bool:
        """The editor wrote the read: a signal score or a "why" field (the store's
        `ANNOTATED` SQL says the same). Only annotated signals ever get a public page."""
        return self.signal_score is not None or self.has_why


_NO_SECTIONS: frozenset[str] = frozenset()


def parse_sections_off(stored: str | None) -> frozenset[str]:
    """A reader's `sections_off` column (a JSON list); most readers turned nothing off."""
    return frozenset(json.loads(stored)) if stored and stored != "[]" else _NO_SECTIONS


@dataclass(frozen=True)
class Subscriber:
    id: int
    email: str
    name: str | None
    status: str
    #: what this person's links are signed with (see `tokens`); "" for a sample reader
    token_nonce: str = field(default="", repr=False)
    #: the sections (by title) this reader turned off: any other, a new one included, is on
    sections_off: frozenset[str] = frozenset()
    #: Unix time until which this reader gets nothing (a pause); None: not paused
    paused_until: float | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Subscriber:
        off = row.get("sections_off")
        return cls(
            row["id"],
            row["email"],
            row.get("name"),
            row["status"],
            row.get("token_nonce") or "",
            parse_sections_off(off),
            row.get("paused_until"),
        )

    def wants(self, section: str) -> bool:
        return section not in self.sections_off

    def paused_at(self, now: float) -> bool:
        return self.paused_until is not None and now < self.paused_until


@dataclass(frozen=True)
class Section:
    title: str
    signals: tuple[Signal, ...]
    lead: bool = False  # the lead story, opening the dispatch whatever its category


@dataclass(frozen=True)
class Dispatch:
    id: int
    week: str
    issue_number: int
    status: str
    subject: str
    preheader: str
    note: str | None
    sections: tuple[Section, ...] = field(default=())
    html: str | None = None
    text: str | None = None
    slot_nonce: str | None = None

    @property
    def signals(self) -> tuple[Signal, ...]:
        return tuple(s for section in self.sections for s in section.signals)


#: what a tracked link leads to (engagement): a signal's title, its "Read at" button, a link in
#: its summary, the archive copy ("view in browser"), or the open pixel (no destination)
LINK_KINDS = ("title", "read", "summary", "view", "open")


@dataclass(frozen=True)
class TrackedLink:
    """One link of a dispatch as the email carries it: `/r/<key>` leads to `url`."""

    key: str
    dispatch_id: int
    signal_id: int | None
    kind: str
    url: str
