"""Collection: fetch every enabled source, parse, upsert; a broken source never stops the rest.

Fetches run concurrently on worker threads (they only wait on the network); parsing and every
database write happen on the calling thread, one transaction per source, so a source either
lands whole or not at all and SQLite sees a single writer.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import zip_longest
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from newsletter import __version__
from newsletter.errors import FeedError
from newsletter.signals.fetch import (
    DEFAULT_POLICY,
    Fetched,
    FetchPolicy,
    fetch,
    local_path,
    make_client,
)
from newsletter.store import Store

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

# Outcomes recorded as the source's last_status.
OK, WARNINGS, NOT_MODIFIED, UNCHANGED, ERROR = (
    "ok",
    "ok-with-warnings",
    "not-modified",
    "unchanged",
    "error",
)


@dataclass
class SourceResult:
    name: str
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    status: str = OK
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    failures_in_a_row: int = 0


@dataclass
class CollectReport:
    sources: list[SourceResult] = field(default_factory=list)

    @property
    def failed(self) -> list[SourceResult]:
        return [s for s in self.sources if s.error]

    @property
    def new(self) -> int:
        return sum(s.new for s in self.sources)

    @property
    def updated(self) -> int:
        return sum(s.updated for s in self.sources)


def body_hash(body: bytes) -> str:
    """Fingerprint of a feed body: an unchanged feed is recognised without parsing it."""
    return hashlib.blake2b(body, digest_size=20).hexdigest()


def store_fetched(
    store: Store, source: dict[str, Any], fetched: Fetched, now: datetime
) -> SourceResult:
    """Parse and upsert one fetched feed in one transaction; skip it when nothing changed."""
    result = SourceResult(source["name"])
    if fetched.not_modified:
        if _failed_to_parse(source):
            return _failed(store, source, result, _last_error(source), fetched)
        result.status = NOT_MODIFIED
        store.sources.record_fetch(
            source["id"],
            status=NOT_MODIFIED,
            etag=fetched.etag,
            last_modified=fetched.last_modified,
        )
        return result
    digest = body_hash(fetched.body)
    if source.get("content_hash") == _broken(digest):
        return _failed(store, source, result, _last_error(source), fetched, digest)
    if digest == source.get("content_hash") and source.get("last_status") != ERROR:
        result.status = UNCHANGED
        store.sources.record_fetch(
            source["id"], status=UNCHANGED, etag=fetched.etag, last_modified=fetched.last_modified
        )
        return result
    # Imported here: feedparser and nh3 load only when a feed changed (the 304 path needs neither).
    from newsletter.signals.parse import parse_feed

    try:
        parsed = parse_feed(
            fetched.body,
            base_url=fetched.url,
            source_label=source.get("label"),
            category=source.get("category"),
            name=source["name"],
            content_type=fetched.content_type,
        )
    except FeedError as exc:
        # the parser names the feed; the result already does (no "✗ name: name: ...")
        error = str(exc).removeprefix(f"{source['name']}: ")
        return _failed(store, source, result, error, fetched, digest)
    except Exception as exc:  # feedparser is forgiving, but a feed must never stop the run
        log.debug("parsing %s", source["name"], exc_info=True)
        error = f"cannot parse ({exc.__class__.__name__}: {exc})"
        return _failed(store, source, result, error, fetched, digest)
    result.warnings = list(parsed.warnings)
    if fetched.moved_to:
        # Followed, but not rewritten on our own: a hijacked redirect must not stick silently.
        result.warnings.append(
            f"{source['name']}: moved permanently to {fetched.moved_to};"
            f" update it with `newsletter sources add {source['name']} {fetched.moved_to}`"
        )
    result.status = WARNINGS if result.warnings else OK
    with store.transaction():
        for item in parsed.items:
            outcome = store.signals.upsert_item(item, source["id"], now)
            setattr(result, outcome, getattr(result, outcome) + 1)
        store.sources.record_fetch(
            source["id"],
            status=result.status,
            item_count=len(parsed.items),
            etag=fetched.etag,
            last_modified=fetched.last_modified,
            content_hash=digest,
        )
    return result


def _broken(digest: str) -> str:
    """The fingerprint kept for a body that failed to parse. The same bytes fail the same way,
    so an unchanged broken feed is reported again without being parsed again (nor feedparser
    loaded: a re-poll of unchanged feeds parses nothing). The release is part of it, so a
    newer parser tries the body once more."""
    return f"broken-{__version__}:{digest}"


def _failed_to_parse(source: dict[str, Any]) -> bool:
    return (source.get("content_hash") or "").startswith(_broken(""))


def _last_error(source: dict[str, Any]) -> str:
    return source.get("last_error") or "the feed did not parse last time and has not changed"


def _failed(
    store: Store,
    source: dict[str, Any],
    result: SourceResult,
    error: str,
    body: Fetched | None = None,
    digest: str | None = None,
) -> SourceResult:
    """Record a failure; `body` is the response that arrived and did not parse (its validators
    and fingerprint are kept, see `_broken`), None when nothing arrived."""
    result.error = error
    result.status = ERROR
    result.failures_in_a_row = int(source.get("consecutive_errors") or 0) + 1
    store.sources.record_fetch(
        source["id"],
        status=ERROR,
        error=error,
        etag=body.etag if body else None,
        last_modified=body.last_modified if body else None,
        content_hash=_broken(digest) if digest else None,
    )
    return result


def _fetch_all(
    sources: list[dict[str, Any]], policy: FetchPolicy
) -> Iterator[tuple[dict[str, Any], Fetched | FeedError]]:
    """Yield each source with its fetched body (or the error) as soon as it arrives."""

    gates: dict[str, threading.BoundedSemaphore] = {}
    gates_lock = threading.Lock()

    def gate(url: str) -> threading.BoundedSemaphore:
        host = _host(url)
        with gates_lock:
            return gates.setdefault(host, threading.BoundedSemaphore(max(policy.per_host, 1)))

    def one(source: dict[str, Any], client: httpx.Client | None) -> Fetched:
        try:
            with gate(source["url"]):
                return fetch(
                    source["url"],
                    client=client,
                    etag=source.get("etag"),
                    last_modified=source.get("last_modified"),
                    policy=policy,
                )
        except FeedError:
            raise
        except Exception as exc:  # one odd source (a bad URL, a library bug) never stops the rest
            log.debug("fetching %s", source["url"], exc_info=True)
            raise FeedError(f"{source['url']}: {exc.__class__.__name__}: {exc}") from None

    remote = [s for s in sources if _is_remote(s["url"])]
    client = make_client(policy) if remote else None
    try:
        if len(remote) <= 1 or policy.concurrency <= 1:
            for source in sources:
                try:
                    yield source, one(source, client)
                except FeedError as exc:
                    yield source, exc
            return
        with ThreadPoolExecutor(max_workers=policy.concurrency) as pool:
            futures: dict[Future[Fetched], dict[str, Any]] = {
                pool.submit(one, source, client): source for source in _by_turns(sources)
            }
            for future in as_completed(futures):
                try:
                    yield futures[future], future.result()
                except FeedError as exc:
                    yield futures[future], exc
    finally:
        if client is not None:
            client.close()


def _host(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


def _by_turns(sources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Sources with their hosts taking turns, so workers waiting on one host's limit do not
    hold back the others."""
    queues: dict[str, list[dict[str, Any]]] = {}
    for source in sources:
        queues.setdefault(_host(source["url"]), []).append(source)
    return [s for turn in zip_longest(*queues.values()) for s in turn if s is not None]


def _is_remote(url: str) -> bool:
    try:
        return local_path(url) is None
    except FeedError:
        return False


def collect(
    store: Store,
    *,
    now: datetime | None = None,
    policy: FetchPolicy = DEFAULT_POLICY,
    names: list[str] | None = None,
    progress: Callable[[SourceResult], None] | None = None,
) -> CollectReport:
    """Fetch every enabled source (or just `names`) and store what it holds.

    `progress` is called with each source's result as it lands, for a live display.
    """
    now = now or datetime.now(UTC)
    sources = store.sources.list(enabled_only=names is None)
    if names is not None:
        wanted = set(names)
        unknown = wanted - {s["name"] for s in sources}
        if unknown:
            raise FeedError(f"no source named {sorted(unknown)[0]!r} (see `sources list`)")
        sources = [s for s in sources if s["name"] in wanted]
    report = CollectReport()
    for source, fetched in _fetch_all(sources, policy):
        if isinstance(fetched, FeedError):
            result = _failed(store, source, SourceResult(source["name"]), str(fetched))
        else:
            result = store_fetched(store, source, fetched, now)
        _log(result, logging.DEBUG if progress else logging.INFO)
        report.sources.append(result)
        if progress is not None:
            progress(result)
    report.sources.sort(key=lambda r: r.name)
    return report


def _log(result: SourceResult, level: int) -> None:
    """Log each source's outcome; with a live display (progress) only at debug level."""
    alarm = logging.WARNING if level > logging.DEBUG else logging.DEBUG
    if result.error:
        log.log(
            alarm,
            "source %s failed: %s",
            result.name,
            result.error,
        )
        return
    log.log(
        level,
        "source %s (%s): %d new, %d updated, %d unchanged",
        result.name,
        result.status,
        result.new,
        result.updated,
        result.unchanged,
    )
    for warning in result.warnings:
        log.log(alarm, "%s", warning)
