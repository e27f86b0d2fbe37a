"""Following a tracked link: `/r/<token>` -> the stored URL, and one hit counted.

Library first: the web service (`subscribers.clicks`) only turns a `Followed` into a 302 or the
pixel. A token that is not well formed, names no stored link, or carries a reader part whose
MAC does not match leads nowhere (404) and counts nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote, urlsplit, urlunsplit

from newsletter.engagement.agents import classify
from newsletter.engagement.links import parse, reader_of
from newsletter.engagement.recorder import Recorder
from newsletter.settings import Settings
from newsletter.store import Store

#: a transparent 1x1 GIF: the open pixel's answer
PIXEL = bytes.fromhex(
    "47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b"
)
#: characters a URL keeps as they are in a Location header (RFC 3986 reserved and unreserved,
#: and % of existing escapes); anything else (spaces, non-ASCII) is percent-encoded
_SAFE = "!#$%&'()*+,/:;=?@[]~-._"


@dataclass(frozen=True)
class Followed:
    location: str | None  # where to send the visitor; None: the open pixel


@dataclass(frozen=True)
class _Link:
    dispatch_id: int
    kind: str
    location: str
    frozen: bool


def location(url: str) -> str | None:
    """`url` as a Location header value: ASCII, no control characters or line breaks (a
    stored URL came from a feed), the host IDNA-encoded; None when it cannot be one."""
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        return None
    if url.isascii() and " " not in url:
        return url
    parts = urlsplit(url)
    try:
        host = (parts.hostname or "").encode("idna").decode("ascii")
    except UnicodeError:
        return None
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    return urlunsplit(
        (parts.scheme, netloc, quote(parts.path, _SAFE), quote(parts.query, _SAFE), "")
    ) + (f"#{quote(parts.fragment, _SAFE)}" if parts.fragment else "")


class Redirects:
    """One web worker's `/r/`: links of frozen dispatches kept in memory (they never change),
    hits handed to the worker's `Recorder`."""

    def __init__(
        self,
        settings: Settings,
        secret: str,
        salt: bytes,
        store: Callable[[], Store],
        recorder: Recorder,
    ) -> None:
        self.settings = settings
        self.secret = secret
        self.salt = salt  # in memory only: the visitor hashes mean nothing once serve stops
        self.store = store
        self.recorder = recorder
        self._links: dict[str, _Link] = {}

    def _link(self, key: str) -> _Link | None:
        found = self._links.get(key)
        if found is not None:
            return found
        row = self.store().clicks.link(key)
        if row is None:
            return None
        target = location(row["url"]) if row["kind"] != "open" else ""
        if target is None:
            return None
        link = _Link(row["dispatch_id"], row["kind"], target, bool(row["frozen"]))
        if link.frozen:  # a test message's link may be dropped at the freeze: not kept
            self._links[key] = link
        return link

    def follow(self, token: str, method: str, agent: str, client: str) -> Followed | None:
        """Where `token` leads (None: nowhere, 404), counting the hit when its dispatch was
        frozen and tracking is on."""
        parsed = parse(token)
        if parsed is None:
            return None
        key, part = parsed
        link = self._link(key)
        if link is None:
            return None
        reader = None if part is None else reader_of(self.secret, link.dispatch_id, part)
        if part is not None and reader is None:
            return None
        mode = self.settings.tracking
        if link.frozen and mode != "off":
            browser, reason = classify(method, agent)
            kept = reader if mode == "per-reader" else None
            self.recorder.add(
                (key, time.time(), self._visitor(kept, client, agent), browser, reason, kept)
            )
        return Followed(None if link.kind == "open" else link.location)

    def _visitor(self, reader: int | None, client: str, agent: str) -> str:
        """Who a burst is counted for: the reader (per-reader mode), else a keyed hash of the
        client's address and user agent, kept only until the hit is classified."""
        if reader is not None:
            return f"reader:{reader}"
        return hmac.digest(self.salt, f"{client}\n{agent}".encode(), hashlib.sha256)[:12].hex()
