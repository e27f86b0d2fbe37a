"""Subscriber rules shared by the CLI and the web service: validation, the double opt-in
lifecycle, unsubscribing, erasure, provider bounce reports, CSV import and export.

Everything here is a library call; `subscribers/` (web) and `newsletter.cli.subscribers`
only translate requests and arguments into these calls.
"""

from __future__ import annotations

import csv
import json
import time
import unicodedata
from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from email_validator import EmailNotValidError, validate_email

from newsletter.errors import SubscriberError
from newsletter.models import Subscriber
from newsletter.readers.sections import UnknownSection, resolve_titles, split_titles
from newsletter.settings import Settings
from newsletter.store import Store
from newsletter.store.subscribers import address_hash
from newsletter.tokens import Token, legacy_matches, matches, new_nonce, parse_token

MAX_NAME = 200
MAX_EMAIL = 254
#: statuses an import or a sign-up must never turn back into `active`
LEFT = ("unsubscribed", "bounced", "complained")
#: a pending (or returning) address gets at most one mail per this many seconds
NOTICE_EVERY = 3600.0
#: the per-IP and per-address sign-up limits count over this many seconds
SIGNUP_WINDOW = 3600.0


def normalise_email(raw: str, *, check_deliverability: bool = False) -> str:
    """The address as we store it (lower case, IDN in Unicode); SubscriberError if invalid."""
    text = (raw or "").strip()
    if len(text) > MAX_EMAIL:
        raise SubscriberError(f"invalid address: longer than {MAX_EMAIL} characters")
    if any(ch in text for ch in "\r\n\x00"):
        raise SubscriberError("invalid address: contains a line break")
    if "=?" in unicodedata.normalize("NFKC", text):
        # legal in a local part, never in a real one, and decoded by mail software into
        # anything at all (CR/LF included): an RFC 2047 encoded word
        raise SubscriberError("invalid address: contains an encoded word (=?)")
    try:
        # allow_smtputf8=False: a non-ASCII local part cannot be written into a 7-bit header
        # by any of our senders; refuse it here rather than never mail the person
        info = validate_email(text, check_deliverability=check_deliverability, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise SubscriberError(f"invalid address {text!r}: {exc}") from None
    # Local parts are case-sensitive on paper and never in practice; one person, one row.
    return info.normalized.lower()


class InvalidName(SubscriberError):
    """A name that cannot be stored: it carries an RFC 2047 encoded word."""


def clean_name(raw: str | None) -> str | None:
    """A name as we store it: no control or format characters, spaces collapsed, bounded.

    An RFC 2047 encoded word (`=?utf-8?b?...?=`) is refused (InvalidName): mail software decodes
    it into anything at all, line breaks included, and no real name holds one. Mail uses only
    a short plain form of the name (`delivery.headers.display_name`).
    """
    if raw is None:
        return None
    text = "".join(ch for ch in raw if unicodedata.category(ch)[0] != "C")
    text = unicodedata.normalize("NFC", " ".join(text.split()))[:MAX_NAME]
    if "=?" in unicodedata.normalize("NFKC", text):
        raise InvalidName("name: an encoded word (=?...?=) is not a name; write it as plain text")
    return text or None


@dataclass(frozen=True)
class AddResult:
    subscriber: Subscriber
    outcome: str  # added | updated | unchanged | refused
    notice: Notice | None = None


@dataclass(frozen=True)
class Notice:
    """A mail owed to one reader; what it says depends on where they stand.

    kind: `confirm` (new or pending), `resubscribe` (left before: a link to come back),
    `already` (active: nothing to do, here is how to leave). `claimed_at` is when it was asked
    for (its links are dated from it); `id` is its row in the notices queue, and `message_id`
    its identity once first claimed for sending.
    """

    subscriber_id: int
    email: str
    name: str | None
    kind: str
    claimed_at: float
    #: the subscriber's token nonce, which the links in the mail are signed with
    token_nonce: str = field(default="", repr=False)
    id: int = 0
    message_id: str = ""


def add_subscriber(
    store: Store,
    email: str,
    *,
    name: str | None = None,
    confirmed: bool = False,
    actor: str = "cli",
    consent_text: str | None = None,
    consent_ip: str | None = None,
    consent_form: str | None = None,
    now: float | None = None,
) -> AddResult:
    """Add someone as pending (double opt-in) or active (`confirmed`: consent given elsewhere).

    Someone who left (unsubscribed, bounced, complained, erased) is never re-subscribed here.
    A new pending subscriber's confirmation is queued in the same transaction (`notice`);
    `newsletter.readers.notices.send_owed_notices` sends it.
    """
    address = normalise_email(email)
    name = clean_name(name)
    now = time.time() if now is None else now
    with store.subscribers.writing():
        existing = store.subscribers.get_by_email(address)
        if existing is None:
            if store.subscribers.is_erased(address):
                raise SubscriberError(f"{address} was erased on request; not re-subscribed")
            nonce = new_nonce()
            subscriber_id = store.subscribers.add(
                address,
                name=name,
                status="active" if confirmed else "pending",
                actor=actor,
                consent_text=consent_text,
                consent_ip=consent_ip,
                consent_form=consent_form,
                token_nonce=nonce,
            )
            notice = None
            if not confirmed and store.subscribers.claim_notice(subscriber_id, now, NOTICE_EVERY):
                notice = _owe(store, subscriber_id, address, name, "confirm", now, nonce)
            return AddResult(_subscriber(store, subscriber_id), "added", notice)
        if existing["status"] in LEFT:
            return AddResult(Subscriber.from_row(existing), "refused")
        if confirmed and existing["status"] == "pending":
            store.subscribers.set_status(existing["id"], "active", actor=actor, reason="confirmed")
            return AddResult(_subscriber(store, existing["id"]), "updated")
        return AddResult(Subscriber.from_row(existing), "unchanged")


def _owe(
    store: Store,
    subscriber_id: int,
    address: str,
    name: str | None,
    kind: str,
    now: float,
    nonce: str,
) -> Notice:
    """Queue the notice in the caller's transaction: the sign-up and the mail it owes are
    recorded together, and the mail is sent by whoever sends owed notices, after any restart."""
    notice_id = store.notices.queue(subscriber_id, kind, issued_at=now)
    return Notice(subscriber_id, address, name, kind, now, nonce, id=notice_id)


def _subscriber(store: Store, subscriber_id: int) -> Subscriber:
    row = store.subscribers.get(subscriber_id)
    assert row is not None
    return Subscriber.from_row(row)


def find(store: Store, email: str) -> dict[str, Any]:
    """The subscriber row for an address as typed; SubscriberError naming it if unknown."""
    address = normalise_email(email)
    row = store.subscribers.get_by_email(address)
    if row is None:
        raise SubscriberError(f"{address}: no such subscriber")
    return row


# --- sign-up (web) ---------------------------------------------------------------------------


def request_signup(
    store: Store,
    settings: Settings,
    email: str,
    *,
    name: str | None = None,
    ip: str | None = None,
    form: str | None = None,
    actor: str = "web",
    now: float | None = None,
    limits: bool = True,
    sections_off: Iterable[str] = (),
) -> Notice | None:
    """Record a sign-up and queue the mail owed for it (returned), or None when none may be.

    The visitor sees the same answer whatever happens here: a new address becomes `pending`; a
    known one is not changed (its owner learns by mail what happened); bounced and complained
    addresses are never mailed; at most one mail an hour goes to any address.
    `limits`: count the sign-up against the per-IP and per-address limits (RateLimited when
    over), in the same transaction as the sign-up itself. `sections_off`: the sections the
    form's ticks left out (`readers.preferences.sections_off_for`), kept for a new address only.
    """
    address = normalise_email(email, check_deliverability=settings.check_deliverability)
    name = clean_name(name)
    now = time.time() if now is None else now
    consent = settings.consent_text
    with store.subscribers.writing():
        if limits:
            count_against_limits(store, settings, address, ip, now)
        # The same statements whether the address is new or known (a timing would tell)
        off = sorted(set(sections_off))
        row, new = store.subscribers.sign_up(
            address,
            name=name,
            actor=actor,
            consent_text=consent,
            consent_ip=ip,
            consent_form=form,
            sections_off=off,
        )
        subscriber_id, nonce = row["id"], row["token_nonce"]
        event = "subscriber.pending" if new else "subscriber.signup_again"
        # the sections chosen on the form are part of what was consented to
        chosen = {"sections_off": off} if new and off else {}
        store.subscribers.log(
            subscriber_id, event, actor, consent=consent, ip=ip, form=form, **chosen
        )
        kind = {"pending": "confirm", "active": "already", "unsubscribed": "resubscribe"}.get(
            row["status"]
        )
        # claimed even when nothing may be sent (bounced, complained): the same statements
        claimed = store.subscribers.claim_notice(subscriber_id, now, NOTICE_EVERY)
        owed = kind is not None and claimed
        # queued in the same statement whether owed or not (then it inserts nothing)
        notice_id = store.notices.queue(subscriber_id, kind or "confirm", issued_at=now, owed=owed)
    if not owed or kind is None:
        return None
    return Notice(subscriber_id, address, name, kind, now, nonce, id=notice_id)


class RateLimited(SubscriberError):
    """Too many sign-ups from one IP or for one address in the last window."""

    retry_after = int(SIGNUP_WINDOW)


def count_against_limits(
    store: Store, settings: Settings, address: str, ip: str | None, now: float
) -> None:
    """Count one request for `address` from `ip` (a sign-up, a change of address); RateLimited
    when either is over its hourly limit. Inside the caller's write transaction."""
    window = int(SIGNUP_WINDOW)
    checks = [
        (f"ip:{ip}", settings.signup_ip_limit),
        (f"addr:{address_hash(address)}", settings.signup_address_limit),
    ]
    for key, limit in checks:
        if limit and not store.subscribers.hit_rate_limit(key, limit, window, now):
            raise RateLimited("too many sign-ups; try again later")


# --- links in mail ---------------------------------------------------------------------------
#
# A link acts on the subscriber whose id it names only if its MAC holds with that subscriber's
# token nonce (see `tokens`). Links from before nonces (legacy) act only on subscribers the
# migration to nonces found could not have inherited their id (`legacy_links`), and a legacy
# confirmation link only if it was issued after the row was created; rotating a subscriber's
# tokens ends every earlier link.

CONFIRM_PURPOSES = ("confirm", "resubscribe")


def _genuine(store: Store, secret: str, purpose: str, text: str) -> tuple[Token, dict] | None:
    """The token and the subscriber it was made for, or None (forged, altered, malformed,
    rotated, erased, or an old link whose id may have passed to someone else)."""
    token = parse_token(text)
    if token is None:
        return None
    row = store.subscribers.get(token.subscriber_id)
    if row is None:
        return None
    if matches(secret, purpose, token, row.get("token_nonce") or ""):
        return token, row
    legacy = row.get("legacy_links") and legacy_matches(secret, purpose, token)
    if legacy and (purpose == "unsubscribe" or token.issued >= _epoch(row["created_at"])):
        return token, row
    return None


def confirm_link_status(
    store: Store, settings: Settings, token: str, *, now: float | None = None
) -> str:
    """What following a confirmation link would do, changing nothing (the page a GET shows).

    `ready` (it would confirm), `ready_again` (it would bring back someone who left), `used`
    (genuine but spent: already confirmed, or left since), `expired` or `invalid`.
    """
    return _confirm(store, settings, token, now, act=False)


def follow_confirm_link(
    store: Store, settings: Settings, token: str, *, now: float | None = None
) -> str:
    """Confirm (or re-confirm) the subscriber a link names (the page's POST).

    Returns `confirmed`, `used`, `expired` or `invalid`; only `confirmed` changed anything.
    """
    return _confirm(store, settings, token, now, act=True)


def _confirm(store: Store, settings: Settings, text: str, now: float | None, *, act: bool) -> str:
    secret = store.secret_key(settings.secret_key)
    now = time.time() if now is None else now
    with store.subscribers.writing() if act else nullcontext():
        for purpose in CONFIRM_PURPOSES:
            found = _genuine(store, secret, purpose, text)
            if found is not None:
                break
        else:
            return "invalid"
        token, row = found
        if now - token.issued > settings.confirm_days * 86400:
            return "expired"
        fits = (purpose == "confirm" and row["status"] == "pending") or (
            purpose == "resubscribe"
            and row["status"] == "unsubscribed"
            and token.issued >= _epoch(row["unsubscribed_at"])
        )
        if not fits:
            return "used"
        if not act:
            return "ready" if purpose == "confirm" else "ready_again"
        store.subscribers.set_status(row["id"], "active", actor="web", reason=f"{purpose} link")
        store.subscribers.forget_erasure(row["email"])
        if purpose == "confirm" and settings.welcome:
            # in the confirmation's own transaction: both are recorded, or neither, so a
            # restart never loses the welcome and a second click (now `used`) never repeats it
            store.notices.queue(row["id"], "welcome", issued_at=now)
    return "confirmed"


def _epoch(iso: str | None) -> float:
    return datetime.fromisoformat(iso).timestamp() if iso else 0.0


def unsubscribe_link_valid(store: Store, settings: Settings, token: str) -> bool:
    """A genuine unsubscribe link of a subscriber we still have."""
    secret = store.secret_key(settings.secret_key)
    return _genuine(store, secret, "unsubscribe", token) is not None


def follow_unsubscribe_link(
    store: Store, settings: Settings, token: str, *, method: str = "page"
) -> str:
    """`unsubscribed`, `already` (nothing to do) or `invalid` (not a link we can act on)."""
    secret = store.secret_key(settings.secret_key)
    with store.subscribers.writing():
        found = _genuine(store, secret, "unsubscribe", token)
        if found is None:
            return "invalid"
        row = found[1]
        if row["status"] not in ("pending", "active"):
            return "already"
        store.subscribers.set_status(row["id"], "unsubscribed", actor="web", reason=method)
    return "unsubscribed"


def rotate_tokens(store: Store, email: str | None, *, actor: str = "cli") -> int:
    """New token nonces for one subscriber (`email`) or everyone (None): every link made for
    them before (confirmation, unsubscribe, old-format) stops working; the next mail carries
    new ones. Returns how many subscribers were rotated."""
    with store.subscribers.writing():
        subscriber_id = None if email is None else find(store, email)["id"]
        return store.subscribers.rotate_tokens(subscriber_id, actor=actor)


# --- operator actions ------------------------------------------------------------------------


def remove(store: Store, email: str, *, actor: str = "cli") -> str:
    """Unsubscribe an address; returns its status before (nothing changes if it had left)."""
    with store.subscribers.writing():
        row = find(store, email)
        if row["status"] in ("pending", "active"):
            store.subscribers.set_status(row["id"], "unsubscribed", actor=actor, reason="removed")
    return row["status"]


def erase(store: Store, email: str, *, actor: str = "cli") -> None:
    """Delete everything about a person, keeping a hash so no import brings them back."""
    with store.subscribers.writing():
        row = find(store, email)
        store.clicks.forget_reader(row["id"])  # per-reader clicks: counts stay, the reader goes
        store.subscribers.erase(row["id"], row["email"], actor=actor)


def reset(store: Store, email: str, *, actor: str = "cli") -> str:
    """An operator clears a bounce or complaint: the address goes back to where it was
    before (active if it had confirmed, else pending). Returns the new status."""
    with store.subscribers.writing():
        row = find(store, email)
        if row["status"] not in ("bounced", "complained"):
            raise SubscriberError(f"{row['email']} is {row['status']}, not bounced or complained")
        status = "active" if row["confirmed_at"] else "pending"
        store.subscribers.set_status(row["id"], status, actor=actor, reason="reset by operator")
    return status


def record_provider_event(
    store: Store, email: str, status: str, *, provider: str, reason: str = ""
) -> bool:
    """A provider reported a hard bounce or a complaint: stop mailing the address.

    Returns True when a subscriber changed. A complaint is never downgraded to a bounce.
    """
    if status not in ("bounced", "complained"):
        raise ValueError(status)
    try:
        address = normalise_email(email)
    except SubscriberError:
        address = (email or "").strip()
    with store.subscribers.writing():
        row = store.subscribers.get_by_email(address)
        if row is None or row["status"] in (status, "complained"):
            return False
        store.subscribers.set_status(
            row["id"], status, actor=f"webhook:{provider}", reason=reason[:500]
        )
    return True


# --- CSV import and export -------------------------------------------------------------------


@dataclass
class ImportReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    skipped: list[tuple[int, str, str]] = field(default_factory=list)  # line, address, why
    invalid: list[tuple[int, str, str]] = field(default_factory=list)  # line, as given, why
    notices: list[Notice] = field(default_factory=list)
    dry_run: bool = False


def import_csv(
    store: Store,
    path: Path,
    *,
    email_column: str = "email",
    name_column: str | None = "name",
    sections_column: str | None = "sections",
    known_sections: Sequence[str] = (),
    confirmed: bool = False,
    dry_run: bool = False,
    actor: str = "import",
    now: float | None = None,
) -> ImportReport:
    """Add the addresses of a CSV file, all in one transaction (nothing half-written).

    Never re-subscribes anyone who unsubscribed, bounced, complained or was erased.
    `confirmed`: consent was given elsewhere (active at once); otherwise pending, and each new
    address comes back in `notices` for its confirmation mail. `sections_column`: the sections
    each reader takes (titles among `known_sections`, `,` or `;` between; empty: all); a line
    naming an unknown section is invalid, and says which.
    """
    plan = _read_csv(path, email_column, name_column, sections_column)
    report = ImportReport(dry_run=dry_run)
    now = time.time() if now is None else now
    seen: dict[str, int] = {}
    with store.subscribers.writing():
        for line, raw, raw_name, raw_sections in plan:
            if not raw.strip():
                report.invalid.append((line, raw, "no address"))
                continue
            try:
                address = normalise_email(raw)
                name = clean_name(raw_name)
                off = _sections_off(known_sections, raw_sections)
            except SubscriberError as exc:
                plain = isinstance(exc, InvalidName | UnknownSection)
                why = str(exc) if plain else str(exc).split(": ", 1)[-1]
                report.invalid.append((line, raw, why))
                continue
            if address in seen:
                report.skipped.append((line, address, f"duplicate of line {seen[address]}"))
                continue
            seen[address] = line
            existing = store.subscribers.get_by_email(address)
            if existing is None and store.subscribers.is_erased(address):
                report.skipped.append((line, address, "erased on request"))
            elif existing is None:
                report.added.append(address)
                if dry_run:
                    continue
                nonce = new_nonce()
                subscriber_id = store.subscribers.add(
                    address,
                    name=name,
                    status="active" if confirmed else "pending",
                    actor=actor,
                    consent_form=f"import {path.name}",
                    token_nonce=nonce,
                    sections_off=off or (),
                )
                if not confirmed and store.subscribers.claim_notice(
                    subscriber_id, now, NOTICE_EVERY
                ):
                    report.notices.append(
                        _owe(store, subscriber_id, address, name, "confirm", now, nonce)
                    )
            elif existing["status"] in LEFT:
                report.skipped.append((line, address, f"{existing['status']}: never re-added"))
            elif (
                (confirmed and existing["status"] == "pending")
                or (name and name != existing["name"])
                or (off is not None and set(off) != set(json.loads(existing["sections_off"])))
            ):
                report.updated.append(address)
                if dry_run:
                    continue
                if name and name != existing["name"]:
                    store.subscribers.update(existing["id"], name=name, actor=actor)
                if off is not None and set(off) != set(json.loads(existing["sections_off"])):
                    seen = json.loads(existing["sections_seen"] or "[]")
                    store.subscribers.set_sections(existing["id"], off, seen)
                    store.subscribers.log(
                        existing["id"], "preferences.sections", actor, off=off, file=path.name
                    )
                if confirmed and existing["status"] == "pending":
                    store.subscribers.set_status(
                        existing["id"], "active", actor=actor, reason="confirmed by import"
                    )
            else:
                report.skipped.append((line, address, f"already {existing['status']}"))
    return report


def _sections_off(known: Sequence[str], cell: str | None) -> list[str] | None:
    """What a reader whose sections cell is `cell` turns off; None when the cell says nothing."""
    named = split_titles(cell or "")
    if not named:
        return None
    taken = set(resolve_titles(known, named))
    return [title for title in known if title not in taken]


def _read_csv(
    path: Path, email_column: str, name_column: str | None, sections_column: str | None
) -> list[tuple[int, str, str | None, str | None]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = reader.fieldnames or []
            if email_column not in columns:
                raise SubscriberError(
                    f"{path}: no column {email_column!r} (columns: {', '.join(columns) or 'none'});"
                    " name it with --email-column"
                )
            use_name = name_column if name_column in columns else None
            use_sections = sections_column if sections_column in columns else None
            return [
                (
                    reader.line_num,
                    row.get(email_column) or "",
                    row.get(use_name) if use_name else None,
                    row.get(use_sections) if use_sections else None,
                )
                for row in reader
            ]
    except FileNotFoundError:
        raise SubscriberError(f"{path}: no such file") from None
    except UnicodeDecodeError:
        raise SubscriberError(f"{path}: not UTF-8 text") from None
    except csv.Error as exc:
        raise SubscriberError(f"{path}: not a CSV file ({exc})") from None


EXPORT_COLUMNS = (
    "email",
    "name",
    "status",
    "created_at",
    "confirmed_at",
    "unsubscribed_at",
    "consent_text",
    "consent_ip",
    "consent_form",
    "signup_source",
    # preferences: `sections` (what they take of the sections known now, the column `import`
    # reads), `sections_off` (what they turned off), `paused_until` (ISO time; empty: not paused)
    "sections",
    "sections_off",
    "paused_until",
)


def export_csv(
    store: Store, out: IO[str], *, status: str | None = None, known_sections: Sequence[str] = ()
) -> int:
    """Write subscribers as CSV; returns how many. Cells a spreadsheet would run as a formula
    are quoted with a leading apostrophe (names come from strangers)."""
    writer = csv.writer(out)
    writer.writerow(EXPORT_COLUMNS)
    count = 0
    for row in store.subscribers.list(status=status):
        off = json.loads(row.get("sections_off") or "[]")
        until = row.get("paused_until")
        values = {
            **row,
            "sections": "; ".join(t for t in known_sections if t not in off),
            "sections_off": "; ".join(off),
            "paused_until": datetime.fromtimestamp(until, UTC).isoformat() if until else "",
        }
        writer.writerow([_inert(values.get(column)) for column in EXPORT_COLUMNS])
        count += 1
    return count


def _inert(value: Any) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
