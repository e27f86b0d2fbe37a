"""What an unanswered hand-off became, decided from what the sender declares: the rules shared by
deliveries and notices (pure; no I/O).

An unanswered message is resolved only by evidence: the provider's own record has it (sent),
the record does not have it and has had time to (never arrived: send it), or the sender is
idempotent and the key is still honoured (repeat the same request: the provider answers for the
first one). Anything else stays `unknown`, for the operator to decide.
"""

from __future__ import annotations

from datetime import UTC, datetime

from newsletter.delivery.senders.base import Lookup, Sender

ACCEPTED = "accepted"
NEVER_ARRIVED = "never arrived"
UNKNOWN = "unknown"


def lookup_verdict(sender: Sender, found: Lookup, handed_at: float | None, now: float) -> str:
    """`accepted`, `never arrived` (not in the record although it has had time) or `unknown`."""
    if found.accepted:
        return ACCEPTED
    if found.accepted is False and now - (handed_at or 0.0) >= sender.record_delay:
        return NEVER_ARRIVED
    return UNKNOWN


def not_yet_why(sender: Sender, found: Lookup, handed_at: float | None) -> str:
    """Why a lookup left a message unknown, and when asking again can settle it."""
    if found.accepted is None:
        return found.detail or f"{sender.name}'s record could not be read"
    ready = datetime.fromtimestamp((handed_at or 0.0) + sender.record_delay, UTC)
    return (
        f"not in {sender.name}'s record yet, which can lag {sender.record_delay / 60:.0f} min"
        f" behind: `newsletter deliveries reconcile` after {ready:%H:%M} UTC settles it"
    )


def may_repeat(sender: Sender, since: float | None, now: float) -> bool:
    """Whether repeating the same request is still covered by the provider's idempotency key."""
    return sender.idempotent and since is not None and now - since < sender.idempotency_window


def cannot_resolve_why(sender: Sender) -> str:
    return f"{sender.name} cannot be asked whether a message arrived and has no idempotency key"
