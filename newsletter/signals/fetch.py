"""Fetch a feed's bytes from a `file:` path or over http(s). The only network I/O of collection.

Conditional GET (ETag / Last-Modified), bounded redirects, connect and read timeouts, gzip
(httpx decodes it), and a cap on the decoded size so a runaway or hostile server cannot fill
memory. Every failure becomes a FeedError whose message says what went wrong in plain words.
"""

from __future__ import annotations

import functools
import importlib
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, cast
from urllib.parse import unquote, urlsplit

from newsletter import __version__
from newsletter.errors import FeedError

if TYPE_CHECKING:
    import ssl

    import httpx

    from newsletter.settings import Settings

USER_AGENT = (
    f"newsletter/{__version__} (weekly intelligence brief feed collector;"
    " +https://github.com/newsletter/newsletter)"
)
ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml;q=0.9,"
    " application/xml;q=0.8, text/xml;q=0.8, */*;q=0.1"
)
MAX_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class FetchPolicy:
    """How patient and how trusting collection is; one policy for every source of a run."""

    connect_timeout: float = 10.0
    read_timeout: float = 20.0
    max_bytes: int = MAX_BYTES
    max_redirects: int = 5
    concurrency: int = 8
    #: requests to one host at a time: many feeds of one site (arXiv's categories) are fetched
    #: politely, and concurrency goes to distinct hosts
    per_host: int = 2
    user_agent: str = USER_AGENT


DEFAULT_POLICY = FetchPolicy()


def policy_from(settings: Settings) -> FetchPolicy:
    """The operator's NEWSLETTER_FETCH_* settings as a policy."""
    return FetchPolicy(
        connect_timeout=min(DEFAULT_POLICY.connect_timeout, settings.fetch_timeout),
        read_timeout=settings.fetch_timeout,
        max_bytes=settings.fetch_max_mb * 1024 * 1024,
        concurrency=settings.fetch_concurrency,
    )


@dataclass(frozen=True)
class Fetched:
    body: bytes
    url: str
    etag: str | None = None
    last_modified: str | None = None
    not_modified: bool = False
    content_type: str | None = None
    moved_to: str | None = None  # a permanent redirect: the source's URL should be updated


def local_path(url: str) -> Path | None:
    """The file a source points at, for `file:` URLs and bare paths; None for http(s)."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise FeedError(f"{url}: not a valid URL ({exc})") from None
    if parts.scheme == "file":
        return Path(unquote(parts.path))
    if parts.scheme in ("http", "https"):
        return None
    if len(parts.scheme) > 1:  # one letter is a Windows drive, anything longer a real scheme
        raise FeedError(f"{url}: unsupported URL scheme {parts.scheme!r} (use http, https or file)")
    return Path(url)


@functools.cache
def _tls_context() -> ssl.SSLContext:
    # Loading the CA bundle costs ~10-20 ms; a run builds it once, not once per client.
    import ssl

    return ssl.create_default_context()


def load_httpx() -> ModuleType:
    """httpx, imported without its command-line client.

    httpx/__init__ imports httpx._main whenever click and rich are installed (both are ours),
    and with it rich's console, progress bars and pygments: more than half of `import httpx`,
    for a CLI that `collect` never runs (httpx2 has since made that import lazy). A stand-in
    takes its place for the import and is then dropped, so a later `import httpx._main` gets
    the real module; `httpx.main` still runs the real CLI.
    """
    if "httpx" not in sys.modules and "httpx._main" not in sys.modules:
        stand_in = ModuleType("httpx._main")
        stand_in.main = _httpx_cli  # type: ignore[attr-defined]
        sys.modules["httpx._main"] = stand_in
        try:
            import httpx
        finally:
            if sys.modules.get("httpx._main") is stand_in:
                del sys.modules["httpx._main"]
    import httpx

    return httpx


def _httpx_cli() -> None:
    importlib.import_module("httpx._main").main()


class _HttpsOnFirstUse:
    """httpx's transport for https URLs, made on the first one (the CA bundle with it)."""

    def __init__(self, limits: httpx.Limits) -> None:
        self._limits = limits
        self._transport: httpx.HTTPTransport | None = None
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            if self._transport is None:
                hx = load_httpx()
                self._transport = hx.HTTPTransport(verify=_tls_context(), limits=self._limits)
        return self._transport.handle_request(request)

    def __enter__(self) -> _HttpsOnFirstUse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


def make_client(policy: FetchPolicy = DEFAULT_POLICY) -> httpx.Client:
    """One client per collection run: connections are pooled and reused across sources.

    httpx is imported here, not at module level: a run with only `file:` sources (and `collect`
    with none) never loads it. https goes through a transport of its own, made (and the CA
    bundle loaded) on the first https request: a run of plain http feeds never pays for TLS.
    """
    hx = load_httpx()
    limits = hx.Limits(max_connections=max(policy.concurrency, 1) * 2)

    return hx.Client(
        timeout=hx.Timeout(policy.read_timeout, connect=policy.connect_timeout),
        follow_redirects=True,
        max_redirects=policy.max_redirects,
        headers={"User-Agent": policy.user_agent, "Accept": ACCEPT},
        # carries http:// only (every https:// URL, redirects included, takes the mount), so
        # it needs no certificates: verify=False keeps httpx from loading them for nothing
        transport=hx.HTTPTransport(verify=False, limits=limits),
        mounts={"https://": cast("httpx.BaseTransport", _HttpsOnFirstUse(limits))},
    )


def _read_file(url: str, path: Path, policy: FetchPolicy) -> Fetched:
    try:
        size = path.stat().st_size
        if size > policy.max_bytes:
            raise FeedError(f"{url}: larger than the {_mb(policy.max_bytes)} limit")
        return Fetched(body=path.read_bytes(), url=path.resolve().as_uri())
    except OSError as exc:
        raise FeedError(f"{url}: cannot read ({exc.strerror or exc})") from None


def _mb(count: int) -> str:
    return f"{count / 1024 / 1024:g} MB" if count >= 1024 * 1024 else f"{count} bytes"


def fetch(
    url: str,
    *,
    client: httpx.Client | None = None,
    etag: str | None = None,
    last_modified: str | None = None,
    policy: FetchPolicy = DEFAULT_POLICY,
) -> Fetched:
    """GET a feed, conditionally when a validator is known; a 304 comes back as not_modified."""
    path = local_path(url)
    if path is not None:
        return _read_file(url, path, policy)
    headers = {}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    own = client is None
    client = client or make_client(policy)
    try:
        return _get(client, url, headers, policy)
    finally:
        if own:
            client.close()


def _get(client: httpx.Client, url: str, headers: dict[str, str], policy: FetchPolicy) -> Fetched:
    hx = load_httpx()  # loaded already: the client is one

    try:
        with client.stream("GET", url, headers=headers) as response:
            if response.status_code == 304:
                return Fetched(
                    body=b"",
                    url=str(response.url),
                    etag=response.headers.get("etag"),
                    last_modified=response.headers.get("last-modified"),
                    not_modified=True,
                )
            if response.status_code >= 400 or response.status_code < 200:
                phrase = response.reason_phrase or ""
                raise FeedError(f"{url}: HTTP {response.status_code} {phrase}".rstrip())
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > policy.max_bytes:
                raise FeedError(f"{url}: larger than the {_mb(policy.max_bytes)} limit")
            chunks, total = [], 0
            for chunk in response.iter_bytes():
                total += len(chunk)
                if total > policy.max_bytes:
                    raise FeedError(f"{url}: larger than the {_mb(policy.max_bytes)} limit")
                chunks.append(chunk)
            permanent = all(r.status_code in (301, 308) for r in response.history)
            return Fetched(
                body=b"".join(chunks),
                url=str(response.url),
                etag=response.headers.get("etag"),
                last_modified=response.headers.get("last-modified"),
                content_type=response.headers.get("content-type"),
                moved_to=str(response.url) if response.history and permanent else None,
            )
    except hx.TooManyRedirects:
        raise FeedError(f"{url}: more than {policy.max_redirects} redirects (a loop?)") from None
    except hx.ConnectTimeout:
        raise FeedError(f"{url}: no connection within {policy.connect_timeout:g} s") from None
    except hx.TimeoutException:
        raise FeedError(f"{url}: timed out (no data for {policy.read_timeout:g} s)") from None
    except hx.ConnectError as exc:
        raise FeedError(f"{url}: cannot connect ({_connect_reason(exc)})") from None
    except hx.DecodingError:
        raise FeedError(f"{url}: the compressed response is corrupt") from None
    except hx.RemoteProtocolError as exc:
        raise FeedError(f"{url}: the server broke off the response ({exc})") from None
    except hx.UnsupportedProtocol:
        raise FeedError(f"{url}: unsupported URL (use http, https or file)") from None
    except hx.HTTPError as exc:
        raise FeedError(f"{url}: {exc.__class__.__name__}: {exc}") from None


def _connect_reason(exc: httpx.ConnectError) -> str:
    text = str(exc)
    lowered = text.lower()
    if "name or service not known" in lowered or "nodename nor servname" in lowered:
        return "DNS: no such host"
    if "temporary failure in name resolution" in lowered:
        return "DNS lookup failed"
    if "connection refused" in lowered:
        return "connection refused"
    if "certificate" in lowered:
        return f"TLS certificate problem: {text}"
    return text or exc.__class__.__name__
