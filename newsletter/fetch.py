"""Fetch a feed's bytes from a `file:` path or over http(s). The only network I/O of collection."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import httpx

from newsletter import __version__
from newsletter.errors import FeedError

USER_AGENT = f"newsletter/{__version__} (+https://github.com/; feed collector)"
TIMEOUT = httpx.Timeout(20.0, connect=10.0)
MAX_BYTES = 20 * 1024 * 1024


@dataclass(frozen=True)
class Fetched:
    body: bytes
    url: str
    etag: str | None = None
    last_modified: str | None = None
    not_modified: bool = False


def local_path(url: str) -> Path | None:
    """The file a source points at, for `file:` URLs and bare paths; None for http(s)."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        return Path(unquote(parts.path))
    if parts.scheme in ("http", "https"):
        return None
    return Path(url)


def fetch(url: str, *, client: httpx.Client | None = None) -> Fetched:
    path = local_path(url)
    if path is not None:
        try:
            return Fetched(body=path.read_bytes(), url=path.resolve().as_uri())
        except OSError as exc:
            raise FeedError(f"{url}: cannot read ({exc.strerror or exc})") from None
    own = client is None
    client = client or httpx.Client(
        timeout=TIMEOUT, follow_redirects=True, headers={"User-Agent": USER_AGENT}
    )
    try:
        response = client.get(url)
    except httpx.TimeoutException:
        raise FeedError(f"{url}: timed out") from None
    except httpx.HTTPError as exc:
        raise FeedError(f"{url}: {exc.__class__.__name__}: {exc}") from None
    finally:
        if own:
            client.close()
    if response.status_code >= 400:
        raise FeedError(f"{url}: HTTP {response.status_code}")
    if len(response.content) > MAX_BYTES:
        raise FeedError(f"{url}: larger than {MAX_BYTES // 1024 // 1024} MB")
    return Fetched(
        body=response.content,
        url=str(response.url),
        etag=response.headers.get("etag"),
        last_modified=response.headers.get("last-modified"),
    )
