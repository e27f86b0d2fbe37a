"""Unguessable, tamper-proof tokens for links in mail: HMAC-SHA256 over what the link may do.

A token names its purpose and subscriber and is signed with the secret key, so nothing has to be
stored to check it, and an altered or forged token fails a constant-time comparison.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

_SEP = "."


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: str, message: str) -> str:
    digest = hmac.new(secret.encode(), message.encode(), hashlib.sha256).digest()
    return _b64(digest[:20])  # 160 bits


def make_token(
    secret: str, purpose: str, subscriber_id: int, *, issued_at: int | None = None
) -> str:
    """`<id>.<issued>.<mac>`; the issue time lets a purpose expire (confirmation links)."""
    issued = int(time.time()) if issued_at is None else issued_at
    body = f"{subscriber_id}{_SEP}{issued}"
    return _b64(body.encode()) + _SEP + _mac(secret, f"{purpose}:{body}")


def read_token(
    secret: str, purpose: str, token: str, *, max_age: float | None = None, now: float | None = None
) -> int | None:
    """The subscriber id, or None for a forged, altered, malformed or expired token."""
    found = read_signed(secret, purpose, token)
    if found is None:
        return None
    subscriber_id, issued = found
    if max_age is not None and (now if now is not None else time.time()) - issued > max_age:
        return None
    return subscriber_id


def read_signed(secret: str, purpose: str, token: str) -> tuple[int, int] | None:
    """(subscriber id, issue time) of a genuine token, expired or not; None if forged or altered.

    Callers that tell "expired" apart from "forged" check the issue time themselves.
    """
    if len(token) > 200:
        return None
    try:
        encoded, mac = token.split(_SEP, 1)
        body = _unb64(encoded).decode("ascii")
        subscriber_text, issued_text = body.split(_SEP, 1)
        subscriber_id, issued = int(subscriber_text), int(issued_text)
    except (ValueError, UnicodeDecodeError):
        return None
    if not hmac.compare_digest(mac.encode(), _mac(secret, f"{purpose}:{body}").encode()):
        return None
    return subscriber_id, issued


def unsubscribe_token(secret: str, subscriber_id: int) -> str:
    # Fixed issue time: every message to one reader carries the same, permanent link.
    return make_token(secret, "unsubscribe", subscriber_id, issued_at=0)
