"""Unguessable, tamper-proof tokens for links in mail: HMAC-SHA256 over what the link may do.

A token is `<base64url(id.issued)>.<base64url(mac)>`. The MAC covers the purpose, the
subscriber id, the issue time and the subscriber's *token nonce*: a random value kept with the
subscriber, new for every person (ids are never reused either) and replaced when the operator
rotates their links. So a link acts only on the person it was made for, even after an erasure
or a database restored from a backup hands their id to someone else.

Links made before the nonce existed (legacy tokens, the MAC over purpose, id and issue time
only) are still recognised (`legacy_matches`); which subscribers they may act on is decided in
`readers.subscriptions`.

Decoding is strict: canonical unpadded base64url, exactly one dot, decimal numbers without
signs or leading zeros, a MAC of exactly 160 bits. Anything else is not a token.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import time
from functools import lru_cache
from typing import Any, NamedTuple

#: longer than any token we make (~45 characters): refuse before decoding anything
MAX_TOKEN = 96
_MAC_BYTES = 20  # 160 bits
_SHAPE = re.compile(r"([A-Za-z0-9_-]{4,60})\.([A-Za-z0-9_-]{27})")
_BODY = re.compile(r"(0|[1-9][0-9]{0,17})\.(0|[1-9][0-9]{0,11})")


class Token(NamedTuple):
    """A well-formed token, not yet checked against its MAC."""

    subscriber_id: int
    issued: int
    body: str
    mac: bytes


def new_nonce() -> str:
    """A subscriber's token nonce: 128 random bits."""
    return secrets.token_urlsafe(16)


_URLSAFE = bytes.maketrans(b"+/", b"-_")


def _b64(data: bytes) -> str:
    # base64.urlsafe_b64encode's own steps, without its two Python calls: four times a message
    return binascii.b2a_base64(data, newline=False).rstrip(b"=").translate(_URLSAFE).decode("ascii")


def _unb64(text: str) -> bytes | None:
    """The bytes of canonical unpadded base64url `text`, or None (padding, stray bits...)."""
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None
    return data if _b64(data) == text else None


def _mac(secret: str, message: str) -> bytes:
    mac = _keyed(secret).copy()  # a copy of the keyed state: OpenSSL 3 looks the hash up anew
    mac.update(message.encode())  # for every one-shot `hmac.digest`, three times a message
    return mac.digest()[:_MAC_BYTES]


@lru_cache(maxsize=8)
def _keyed(secret: str) -> Any:
    mac = hmac.new(secret.encode(), digestmod=hashlib.sha256)
    # the OpenSSL state under the wrapper when there is one (there is with OpenSSL): the same
    # copy/update/digest, without the wrapper's Python call around each (a third of a token)
    return getattr(mac, "_hmac", None) or mac


def _signed(purpose: str, body: str, nonce: str) -> str:
    # "v2:" keeps these messages apart from legacy ones, which start with the purpose
    return f"v2:{purpose}:{body}:{nonce}"


def make_token(
    secret: str, purpose: str, subscriber_id: int, nonce: str, *, issued_at: int | None = None
) -> str:
    """A link token for one subscriber; the issue time lets a purpose expire (confirmation)."""
    if not nonce:
        raise ValueError("a token needs the subscriber's nonce")
    issued = int(time.time()) if issued_at is None else issued_at
    body = f"{subscriber_id}.{issued}"
    return _b64(body.encode()) + "." + _b64(_mac(secret, _signed(purpose, body, nonce)))


def parse_token(token: str) -> Token | None:
    """The parts of a well-formed token, or None for anything that is not one."""
    if len(token) > MAX_TOKEN:
        return None
    shape = _SHAPE.fullmatch(token)
    if shape is None:
        return None
    body_bytes, mac = _unb64(shape.group(1)), _unb64(shape.group(2))
    if body_bytes is None or mac is None or len(mac) != _MAC_BYTES:
        return None
    body = body_bytes.decode("ascii", errors="replace")
    numbers = _BODY.fullmatch(body)
    if numbers is None:
        return None
    return Token(int(numbers.group(1)), int(numbers.group(2)), body, mac)


def matches(secret: str, purpose: str, token: Token, nonce: str) -> bool:
    """Whether `token` was made for this purpose and the subscriber holding `nonce`."""
    expected = _mac(secret, _signed(purpose, token.body, nonce or "\x00"))
    return hmac.compare_digest(token.mac, expected)


def legacy_matches(secret: str, purpose: str, token: Token) -> bool:
    """Whether `token` is a genuine link from before token nonces (MAC over id and time)."""
    return hmac.compare_digest(token.mac, _mac(secret, f"{purpose}:{token.body}"))


def unsubscribe_token(secret: str, subscriber_id: int, nonce: str) -> str:
    # Fixed issue time: every message to one reader carries the same link until it is rotated.
    return make_token(secret, "unsubscribe", subscriber_id, nonce, issued_at=0)


def preferences_token(secret: str, subscriber_id: int, nonce: str) -> str:
    # Fixed issue time like the unsubscribe link: every message carries the same one, and it
    # works until the reader's links are rotated (an address change rotates them too).
    return make_token(secret, "preferences", subscriber_id, nonce, issued_at=0)
