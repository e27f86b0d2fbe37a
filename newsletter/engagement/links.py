"""Tracked links: each content link of the email becomes `{NEWSLETTER_PUBLIC_URL}/r/<token>`.

The token's first part is the link's *key*: 72 bits of an HMAC (the secret key) over the
dispatch, the signal, what the link is (title, "Read at", a link in the summary, "view in
browser") and its URL. The key names a row stored when the dispatch is frozen, and `/r/` sends a
visitor to that row's URL, never to anything the request carries: a key nobody stored, even one
made with the secret, leads nowhere. The same link gets the same key in every rendering of a
dispatch (a resumed send, each per-reader variant of issue 14), so counts add up per link.

In `aggregate` mode that is the whole token: every reader's copy carries the same links, so
nothing in a click can tell one reader from another. In `per-reader` mode a second part follows,
`.<reader>`, filled in per message like the unsubscribe link: the subscriber id and a 56-bit MAC
binding it to the dispatch. Twelve characters (or 29) keep the HTML about as long as it was.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

from newsletter.models import TrackedLink
from newsletter.settings import Settings

KEY_BYTES = 9  # 12 characters of base64url
_READER_ID_BYTES = 5
_READER_MAC_BYTES = 7  # id + MAC: 16 characters
TOKEN = re.compile(r"([A-Za-z0-9_-]{12})(?:\.([A-Za-z0-9_-]{16}))?")
PATH = "/r/"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii")  # whole 3-byte groups: no padding


def _mac(secret: str, message: str) -> bytes:
    return hmac.digest(secret.encode(), message.encode(), hashlib.sha256)


def link_key(secret: str, dispatch_id: int, signal_id: int | None, kind: str, url: str) -> str:
    body = f"link:{dispatch_id}:{'' if signal_id is None else signal_id}:{kind}:{url}"
    return _b64(_mac(secret, body)[:KEY_BYTES])


def reader_part(secret: str, dispatch_id: int, subscriber_id: int) -> str:
    """`.<reader>`: who follows this copy's links (per-reader mode), bound to the dispatch."""
    ident = subscriber_id.to_bytes(_READER_ID_BYTES, "big")
    mac = _mac(secret, f"reader:{dispatch_id}:{subscriber_id}")[:_READER_MAC_BYTES]
    return "." + _b64(ident + mac)


def parse(token: str) -> tuple[str, str | None] | None:
    """(key, reader part or None) of a well-formed token; None for anything else."""
    match = TOKEN.fullmatch(token)
    return (match[1], match[2]) if match else None


def reader_of(secret: str, dispatch_id: int, part: str) -> int | None:
    """The subscriber id a reader part names, or None when its MAC does not match."""
    raw = base64.urlsafe_b64decode(part)
    subscriber_id = int.from_bytes(raw[:_READER_ID_BYTES], "big")
    expected = _mac(secret, f"reader:{dispatch_id}:{subscriber_id}")[:_READER_MAC_BYTES]
    return subscriber_id if hmac.compare_digest(raw[_READER_ID_BYTES:], expected) else None


class Tracker:
    """Rewrites one rendering's content links and keeps them, to be stored at the freeze
    (`newsletter.dispatch.render.LinkTracker`)."""

    def __init__(self, settings: Settings, secret: str, dispatch_id: int) -> None:
        self.mode = settings.tracking
        self.per_reader = settings.tracking == "per-reader"
        self.prefix = f"{settings.public_url}{PATH}"
        self.secret = secret
        self.dispatch_id = dispatch_id
        self.opens = settings.track_opens
        self._links: dict[str, TrackedLink] = {}

    @property
    def links(self) -> tuple[TrackedLink, ...]:
        return tuple(self._links.values())

    def __call__(self, url: str, signal_id: int | None, kind: str) -> str:
        """The tracked URL of an http(s) link (without the reader part); others unchanged."""
        if not url.lower().startswith(("https://", "http://")):
            return url
        key = link_key(self.secret, self.dispatch_id, signal_id, kind, url)
        if key not in self._links:
            self._links[key] = TrackedLink(key, self.dispatch_id, signal_id, kind, url)
        return self.prefix + key

    def pixel(self) -> str | None:
        """The open pixel's URL, when opens are counted (never per reader)."""
        if not self.opens:
            return None
        key = link_key(self.secret, self.dispatch_id, None, "open", "")
        self._links.setdefault(key, TrackedLink(key, self.dispatch_id, None, "open", ""))
        return self.prefix + key


def tracker_for(settings: Settings, secret: str, dispatch_id: int) -> Tracker | None:
    """The tracker for a new rendering of a dispatch; None when tracking is off."""
    if settings.tracking == "off":
        return None
    return Tracker(settings, secret, dispatch_id)


def original_url(targets: dict[str, str], url: str) -> str:
    """The destination behind a tracked URL (`targets`: key -> URL), or the URL itself."""
    _, found, rest = url.partition(PATH)
    parsed = parse(rest) if found else None
    return targets.get(parsed[0], url) if parsed else url
