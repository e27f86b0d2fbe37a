"""Subscriber rules shared by the CLI and the web service: validation, normalising, lifecycle."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from email_validator import EmailNotValidError, validate_email

from newsletter.errors import SubscriberError
from newsletter.models import Subscriber
from newsletter.store import Store

MAX_NAME = 200
MAX_EMAIL = 254
#: statuses an import or a sign-up must never turn back into `active`
LEFT = ("unsubscribed", "bounced", "complained")


def normalise_email(raw: str, *, check_deliverability: bool = False) -> str:
    """The address as we store it (lower-cased domain, IDN handled); SubscriberError if invalid."""
    text = (raw or "").strip()
    if len(text) > MAX_EMAIL:
        raise SubscriberError(f"invalid address: longer than {MAX_EMAIL} characters")
    if any(ch in text for ch in "\r\n\x00"):
        raise SubscriberError("invalid address: contains a line break")
    try:
        info = validate_email(text, check_deliverability=check_deliverability)
    except EmailNotValidError as exc:
        raise SubscriberError(f"invalid address {text!r}: {exc}") from None
    return info.normalized


def clean_name(raw: str | None) -> str | None:
    """A display name safe for a header and a page: no control characters, bounded length."""
    if raw is None:
        return None
    text = "".join(ch for ch in raw if unicodedata.category(ch)[0] != "C")
    text = " ".join(text.split())[:MAX_NAME]
    return text or None


@dataclass(frozen=True)
class AddResult:
    subscriber: Subscriber
    outcome: str  # added | updated | unchanged | refused


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
) -> AddResult:
    """Add someone as pending (double opt-in) or active (`confirmed`: consent given elsewhere).

    Someone who left (unsubscribed, bounced, complained) is never re-subscribed here.
    """
    address = normalise_email(email)
    name = clean_name(name)
    existing = store.subscribers.get_by_email(address)
    if existing is None:
        subscriber_id = store.subscribers.add(
            address,
            name=name,
            status="active" if confirmed else "pending",
            actor=actor,
            consent_text=consent_text,
            consent_ip=consent_ip,
            consent_form=consent_form,
        )
        row = store.subscribers.get(subscriber_id)
        assert row is not None
        return AddResult(Subscriber.from_row(row), "added")
    if existing["status"] in LEFT:
        return AddResult(Subscriber.from_row(existing), "refused")
    if confirmed and existing["status"] == "pending":
        store.subscribers.set_status(existing["id"], "active", actor=actor, reason="confirmed")
        row = store.subscribers.get(existing["id"])
        assert row is not None
        return AddResult(Subscriber.from_row(row), "updated")
    return AddResult(Subscriber.from_row(existing), "unchanged")
