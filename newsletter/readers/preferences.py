"""A reader's own choices: which sections they get, a pause, a new address, leaving.

The same calls serve the preferences page (`subscribers/preferences.py`, reached by a signed
link in every mail) and `newsletter subscribers prefs`. Sections are kept as what the reader
turned *off* (`sections_off`) plus what they have been shown (`sections_seen`), never as a
list of what they take: a section that appears later is on for everyone until they turn it
off, and their page marks it new. Every change is an event with its time and source (the
consent record): `preferences.sections`, `preferences.paused`, `preferences.resumed`,
`subscriber.email_change_asked`, `subscriber.email_changed`.

A change of address takes effect only once the new address confirms it: the request keeps the
address aside (`pending_email`) and queues a confirmation to it (notice `change`, a link dated
with the request, so only the latest request's link works); the confirmation moves the
subscription, rotates the reader's links (every one of them went to the old address) and
queues one notice to the old address that it changed (`changed`). Nothing else is addressed to
the old address after that. An address that is already someone's gets the same answer; its
owner is told instead (`change_taken`), at most once an hour.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from newsletter.errors import SubscriberError
from newsletter.models import Subscriber
from newsletter.readers.sections import known_sections
from newsletter.readers.subscriptions import (
    NOTICE_EVERY,
    _genuine,
    count_against_limits,
    normalise_email,
)
from newsletter.settings import Settings
from newsletter.store import Store
from newsletter.store.subscribers import address_hash
from newsletter.tokens import matches, parse_token

#: the pauses the page offers, in weeks (the CLI takes any number up to MAX_PAUSE_WEEKS)
PAUSE_WEEKS = (2, 4, 8)
MAX_PAUSE_WEEKS = 52
WEEK = 7 * 86400
#: statuses whose preferences can still be changed
OPEN = ("pending", "active")


@dataclass(frozen=True)
class Choice:
    title: str
    on: bool
    #: appeared since the reader last saw their page (on, like every section not turned off)
    new: bool


@dataclass(frozen=True)
class Preferences:
    """What the preferences page and `subscribers prefs` show for one reader."""

    subscriber_id: int
    email: str
    status: str
    sections: tuple[Choice, ...]
    paused_until: float | None
    pending_email: str | None

    def paused_at(self, now: float) -> bool:
        return self.paused_until is not None and now < self.paused_until

    @property
    def taken(self) -> list[str]:
        return [c.title for c in self.sections if c.on]


def preferences_of(store: Store, settings: Settings, row: dict[str, Any]) -> Preferences:
    subscriber = Subscriber.from_row(row)
    seen = set(_json_titles(row.get("sections_seen")))
    choices = tuple(
        Choice(title, subscriber.wants(title), bool(seen) and title not in seen)
        for title in known_sections(store, settings)
    )
    return Preferences(
        row["id"],
        row["email"],
        row["status"],
        choices,
        subscriber.paused_until,
        row.get("pending_email"),
    )


def _json_titles(value: str | None) -> list[str]:
    return list(json.loads(value)) if value else []


def choose_sections(
    store: Store,
    subscriber_id: int,
    on: Iterable[str],
    shown: Iterable[str],
    *,
    actor: str,
    **detail: Any,
) -> bool:
    """The reader takes `on` among the sections `shown` to them; the choices they made about
    sections not shown now are kept. Logged when something changed; returns whether it did."""
    row = store.subscribers.get(subscriber_id)
    assert row is not None
    shown_set, on_set = set(shown), set(on)
    before_off = set(_json_titles(row.get("sections_off")))
    off = (before_off - shown_set) | (shown_set - on_set)
    seen = set(_json_titles(row.get("sections_seen"))) | shown_set
    store.subscribers.set_sections(subscriber_id, off, seen)
    if off == before_off:
        return False
    store.subscribers.log(subscriber_id, "preferences.sections", actor, off=sorted(off), **detail)
    return True


def pause(
    store: Store, subscriber_id: int, weeks: int, *, actor: str, now: float, **detail: Any
) -> float:
    """No dispatch for `weeks` weeks from `now`; it ends by itself. Returns when it ends."""
    if not 1 <= weeks <= MAX_PAUSE_WEEKS:
        raise SubscriberError(f"a pause is 1 to {MAX_PAUSE_WEEKS} weeks, not {weeks}")
    until = now + weeks * WEEK
    store.subscribers.set_pause(subscriber_id, until)
    store.subscribers.log(
        subscriber_id, "preferences.paused", actor, weeks=weeks, until=_iso(until), **detail
    )
    return until


def resume(store: Store, subscriber_id: int, *, actor: str, now: float, **detail: Any) -> bool:
    """End a pause now; False (nothing logged) when the reader was not paused."""
    row = store.subscribers.get(subscriber_id)
    assert row is not None
    if row["paused_until"] is None or row["paused_until"] <= now:
        if row["paused_until"] is not None:
            store.subscribers.set_pause(subscriber_id, None)  # ended by itself already
        return False
    store.subscribers.set_pause(subscriber_id, None)
    store.subscribers.log(subscriber_id, "preferences.resumed", actor, **detail)
    return True


def describe_pause(until: float | None, now: float) -> str:
    if until is None or until <= now:
        return "not paused"
    return f"paused until {_iso(until)}"


def _iso(when: float) -> str:
    return datetime.fromtimestamp(when, UTC).isoformat(timespec="seconds")


# --- the preferences link --------------------------------------------------------------------


def preferences_row(store: Store, settings: Settings, token: str) -> dict[str, Any] | None:
    """The subscriber a genuine preferences link names, or None (forged, altered, another
    reader's id under this reader's MAC, rotated, erased): the caller answers every None alike."""
    found = _genuine(store, store.secret_key(settings.secret_key), "preferences", token)
    return found[1] if found else None


@dataclass(frozen=True)
class Changes:
    """What a reader asked for on their page."""

    on: tuple[str, ...]
    shown: tuple[str, ...]
    #: "" (keep), "resume", or a number of weeks from PAUSE_WEEKS
    pause: str = ""
    new_email: str = ""


@dataclass(frozen=True)
class Saved:
    sections_changed: bool
    paused_until: float | None
    resumed: bool
    #: an address change was asked for (a confirmation is on its way to it, or its owner told)
    address_asked: bool


def save_changes(
    store: Store,
    settings: Settings,
    token: str,
    changes: Changes,
    *,
    ip: str | None = None,
    now: float | None = None,
) -> Saved | None:
    """Apply what the page posted, all of it or nothing (one transaction): None for a link that
    is not genuine or a subscription that ended; SubscriberError for a bad new address,
    RateLimited when the address change is over the sign-up limits."""
    now = time.time() if now is None else now
    with store.subscribers.writing():
        row = preferences_row(store, settings, token)
        if row is None or row["status"] not in OPEN:
            return None
        known = known_sections(store, settings)
        shown = [t for t in changes.shown if t in known]
        on = [t for t in changes.on if t in shown]
        changed = choose_sections(store, row["id"], on, shown, actor="web", ip=ip)
        until, resumed = None, False
        if changes.pause == "resume":
            resumed = resume(store, row["id"], actor="web", now=now, ip=ip)
        elif changes.pause:
            weeks = int(changes.pause) if changes.pause.isdigit() else 0
            if weeks not in PAUSE_WEEKS:
                raise SubscriberError(f"a pause is {', '.join(map(str, PAUSE_WEEKS))} weeks")
            until = pause(store, row["id"], weeks, actor="web", now=now, ip=ip)
        asked = False
        if changes.new_email.strip():
            asked = ask_address_change(store, settings, row, changes.new_email, ip=ip, now=now)
    return Saved(changed, until, resumed, asked)


def unsubscribe_by_link(store: Store, settings: Settings, token: str) -> bool:
    """The page's "unsubscribe" button; False for a link that is not genuine."""
    with store.subscribers.writing():
        row = preferences_row(store, settings, token)
        if row is None:
            return False
        if row["status"] in OPEN:
            store.subscribers.set_status(
                row["id"], "unsubscribed", actor="web", reason="preferences page"
            )
    return True


# --- change of address -----------------------------------------------------------------------


def ask_address_change(
    store: Store,
    settings: Settings,
    row: dict[str, Any],
    new_email: str,
    *,
    ip: str | None,
    now: float,
    actor: str = "web",
    limits: bool = True,
) -> bool:
    """Queue the confirmation of `new_email` for the reader `row` (inside the caller's write
    transaction). Returns False when it is their address already (nothing to do).

    A taken address gets the same treatment seen from outside: the same limits counted, a
    notice queued (to its owner, saying someone asked; at most once an hour), nothing moved.
    """
    address = normalise_email(new_email, check_deliverability=settings.check_deliverability)
    if address == row["email"]:
        return False
    if row["status"] != "active":
        # a pending reader's confirmation link went to the address they gave: that one
        # confirms first (a new address would need its own double opt-in anyway)
        raise SubscriberError("confirm your subscription first, then change its address")
    if limits:
        count_against_limits(store, settings, address, ip, now)
    owner = store.subscribers.get_by_email(address)
    if owner is None:
        store.subscribers.ask_email_change(row["id"], address, now)
        store.notices.queue(row["id"], "change", issued_at=now, to_email=address)
        store.subscribers.log(row["id"], "subscriber.email_change_asked", actor, to=address, ip=ip)
        return True
    owed = owner["status"] not in ("bounced", "complained") and store.subscribers.claim_notice(
        owner["id"], now, NOTICE_EVERY
    )
    store.notices.queue(owner["id"], "change_taken", issued_at=now, owed=owed)
    # the reader's own record says only that they asked; never whose address it was
    store.subscribers.log(row["id"], "subscriber.email_change_asked", actor, to="(refused)", ip=ip)
    return True


def change_purpose(address: str) -> str:
    """What a new address's confirmation link is signed for: that address and no other, so
    the link of a request a later one replaced moves nobody anywhere."""
    return "change:" + address_hash(address)[:32]


def change_link_status(
    store: Store, settings: Settings, token: str, *, now: float | None = None
) -> str:
    """What the new address's confirmation link would do, changing nothing (its GET page):
    `ready`, `used` (spent, or a later request replaced it), `taken`, `expired` or `invalid`."""
    return _change(store, settings, token, now, act=False)


def follow_change_link(
    store: Store, settings: Settings, token: str, *, now: float | None = None
) -> str:
    """Move the subscription to the confirmed new address (the page's POST): `changed`, or
    what `change_link_status` says; only `changed` changed anything."""
    return _change(store, settings, token, now, act=True)


def _change(store: Store, settings: Settings, text: str, now: float | None, *, act: bool) -> str:
    secret = store.secret_key(settings.secret_key)
    now = time.time() if now is None else now
    with store.subscribers.writing() if act else nullcontext():
        token = parse_token(text)
        row = store.subscribers.get(token.subscriber_id) if token else None
        if token is None or row is None or not row.get("pending_email"):
            return "invalid"
        # signed for the address waiting now, or for nothing (an earlier request's link)
        purpose = change_purpose(row["pending_email"])
        if not matches(secret, purpose, token, row.get("token_nonce") or ""):
            return "invalid"
        asked_at = row.get("pending_email_at")
        if asked_at is None or int(asked_at) != token.issued:
            return "used"
        if row["status"] not in OPEN:
            return "used"
        if now - token.issued > settings.confirm_days * 86400:
            return "expired"
        new = row["pending_email"]
        if store.subscribers.get_by_email(new) is not None:
            return "taken"
        if not act:
            return "ready"
        old = row["email"]
        store.subscribers.change_email(row["id"], new)
        store.subscribers.forget_erasure(new)
        store.subscribers.log(row["id"], "subscriber.email_changed", "web", old=old, new=new)
        # the one mail the old address gets after this: that it changed (and from then on
        # nothing: every notice and dispatch takes the subscriber's address, now the new one)
        store.notices.queue(row["id"], "changed", issued_at=now, to_email=old)
    return "changed"
