"""Per-reader variants of a dispatch: which sections a reader gets, and the dispatch they make.

A reader's *key* is the sorted tuple of this week's section titles they want
(`Subscriber.wants`); every reader with the same key gets the same variant, rendered once. The
sections are the categories the week's signals belong to (the lead story is a position, not a
section: it is the strongest signal of what a variant holds). Pure, so it tests without a
database.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

from newsletter.dispatch.select import (
    arrange,
    default_preheader,
    default_subject,
    group_sections,
    strength,
)
from newsletter.errors import DispatchError
from newsletter.models import Dispatch, Signal, Subscriber

Key = tuple[str, ...]


def signal_sections(dispatch: Dispatch, order: Sequence[str]) -> dict[int, str]:
    """The section title of each of the dispatch's signals, the lead's own category included
    (spelt as the dispatch shows it: the configured spelling, whatever the feed's case)."""
    return {
        signal.id: section.title
        for section in group_sections(dispatch.signals, order)
        for signal in section.signals
    }


def week_sections(dispatch: Dispatch, order: Sequence[str]) -> Key:
    """This week's section titles, in the dispatch's order."""
    return tuple(dict.fromkeys(signal_sections(dispatch, order).values()))


def reader_key(sections: Iterable[str], sections_off: frozenset[str]) -> Key:
    """The sections of this week a reader who turned `sections_off` off gets (as
    `Subscriber.wants` says); () when their choices leave nothing."""
    reader = Subscriber(0, "", None, "active", sections_off=sections_off)
    return tuple(sorted(title for title in sections if reader.wants(title)))


def full_key(sections: Iterable[str]) -> Key:
    return tuple(sorted(sections))


def describe(key: Key, full: Key | None = None) -> str:
    """`AI, Markets`, or `all sections (...)` for the full dispatch."""
    listed = ", ".join(key) or "no section"
    return f"all sections ({listed})" if full is not None and key == full else listed


def nothing_left(sections: Key) -> str:
    """The reason a reader whose choices leave nothing is skipped this week."""
    return f"none of this week's sections ({', '.join(sections)}) is among the reader's choices"


def parse_sections(text: str, sections: Key) -> Key:
    """`--sections A,B` as a key of this week's sections (any case); an error names the
    sections there are."""
    by_name = {title.lower(): title for title in sections}
    wanted = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [name for name in wanted if name.lower() not in by_name]
    there = ", ".join(sections) or "none"
    if unknown:
        raise DispatchError(
            f"--sections: no section {', '.join(map(repr, unknown))} this week (there are: {there})"
        )
    if not wanted:
        raise DispatchError(f"--sections: name at least one section (there are: {there})")
    return tuple(sorted({by_name[name.lower()] for name in wanted}))


def variant_dispatch(
    dispatch: Dispatch,
    key: Key,
    *,
    order: Sequence[str],
    name: str,
    subject_set: bool,
    preheader_set: bool,
) -> Dispatch:
    """The dispatch as readers of `key` get it: only those sections' signals, the strongest of
    them as the lead, and the subject and preheader generated from them unless the editor set
    them. The full key gives the dispatch itself."""
    of = signal_sections(dispatch, order)
    if key == full_key(set(of.values())):
        return dispatch
    chosen = set(key)
    kept: list[Signal] = [s for s in dispatch.signals if of[s.id] in chosen]
    if not kept:
        raise DispatchError(f"no signal of {dispatch.week} is in {describe(key)}")
    strongest = sorted(kept, key=strength, reverse=True)
    return replace(
        dispatch,
        sections=tuple(arrange(kept, order)),
        subject=dispatch.subject
        if subject_set
        else default_subject(strongest, name, dispatch.issue_number),
        preheader=dispatch.preheader if preheader_set else default_preheader(strongest),
        html=None,
        text=None,
        slot_nonce=None,
    )
