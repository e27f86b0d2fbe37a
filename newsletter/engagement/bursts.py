"""Telling a scanner's burst from a reader: a link scanner follows every link of a message
within a second or two; a person opens one, now and then two. A *visitor* (one message's
reader in per-reader mode; in aggregate mode a keyed hash of the client's address and user
agent, which identifies nobody and is dropped with the queued hit) that follows at least
BURST_LINKS different links of one dispatch within BURST_SECONDS is automated, every hit of
that run included. Pure: the queued hits in, the classification out.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from itertools import groupby
from typing import Any

from newsletter.store.clicks import Settled

BURST_LINKS = 3
BURST_SECONDS = 5.0
#: a hit is classified this long after it arrived: its burst window has closed by then, and
#: every web worker has written its hits (they flush every quarter second)
SETTLE_AFTER = BURST_SECONDS + 2.0
HOUR = 3600


def classify(
    queued: Sequence[dict[str, Any]], *, due_before: float | None
) -> tuple[set[int], list[Settled]]:
    """(ids of queued hits found in a burst, the hits that are due, classified).

    `queued` holds the visitors' queued hits sorted by visitor and time; a hit is due at or
    before `due_before` (None: all are). A burst is found from its earliest hit, whose window
    is complete once it is due, so marks made on hits not yet due are kept for their turn.
    """
    marked: set[int] = set()
    done: list[Settled] = []
    for _, group in groupby(queued, key=lambda q: (q["visitor"], q["dispatch_id"])):
        hits = list(group)
        marked |= _bursts(hits)
        for hit in hits:
            if due_before is not None and hit["at"] > due_before:
                continue
            burst = bool(hit["burst"]) or hit["id"] in marked
            human = bool(hit["browser"]) and not burst
            reason = None if human else hit["reason"] or "burst"
            hour = int(hit["at"]) // HOUR * HOUR
            done.append((hit["id"], hit["link_key"], hour, human, reason, hit["subscriber_id"]))
    return marked, done


def _bursts(hits: list[dict[str, Any]]) -> set[int]:
    """Ids of the hits inside any BURST_SECONDS window that holds BURST_LINKS distinct links
    (the open pixel is not a link a scanner follows: it does not count)."""
    marked: set[int] = set()
    window: Counter[str] = Counter()
    end = 0
    marked_to = 0
    for start, first in enumerate(hits):
        while end < len(hits) and hits[end]["at"] <= first["at"] + BURST_SECONDS:
            if hits[end]["kind"] != "open":
                window[hits[end]["link_key"]] += 1
            end += 1
        if len(window) >= BURST_LINKS:
            for hit in hits[max(start, marked_to) : end]:
                marked.add(hit["id"])
            marked_to = end
        if first["kind"] != "open":
            window[first["link_key"]] -= 1
            if not window[first["link_key"]]:
                del window[first["link_key"]]
    return marked
