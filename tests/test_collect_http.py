"""Collection against a real HTTP server on 127.0.0.1: every way a feed can break, one run."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from newsletter.signals.collect import collect
from newsletter.signals.fetch import USER_AGENT, FetchPolicy
from newsletter.store import Store

FEEDS = Path(__file__).parent / "fixtures" / "feeds"
ARXIV = (FEEDS / "arxiv" / "rss-arxiv-org_rss_cs.LG_2026-04-27_trimmed3.xml").read_bytes()
ATOM = (FEEDS / "arxiv" / "rss-arxiv-org_atom_cs.AI_2025-08-20_trimmed7.xml").read_bytes()
RELEASES = (FEEDS / "realworld" / "github-releases_python-cpython.atom").read_bytes()
POLICY = FetchPolicy(read_timeout=1.0, connect_timeout=2.0, max_bytes=300_000, max_redirects=3)
NOW = datetime(2026, 4, 28, tzinfo=UTC)

Route = Callable[[BaseHTTPRequestHandler], None]


def _send(handler: BaseHTTPRequestHandler, status: int, body: bytes, **headers: str) -> None:
    handler.send_response(status)
    headers.setdefault("Content-Type", "application/rss+xml; charset=utf-8")
    for name, value in headers.items():
        handler.send_header(name.replace("_", "-"), value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def etag_feed(h: BaseHTTPRequestHandler) -> None:
    if h.headers.get("If-None-Match") == '"v1"':
        h.send_response(304)
        h.send_header("ETag", '"v1"')
        h.end_headers()
        return
    _send(h, 200, ARXIV, ETag='"v1"', Last_Modified="Mon, 27 Apr 2026 04:00:01 GMT")


def gzip_feed(h: BaseHTTPRequestHandler) -> None:
    assert "gzip" in h.headers.get("Accept-Encoding", "")
    _send(h, 200, gzip.compress(ATOM), Content_Encoding="gzip", Content_Type="application/atom+xml")


def slow(h: BaseHTTPRequestHandler) -> None:
    time.sleep(3.0)
    _send(h, 200, ARXIV)


def oversize(h: BaseHTTPRequestHandler) -> None:
    # No Content-Length: the cap must hold while streaming, not only on the declared size.
    h.send_response(200)
    h.send_header("Content-Type", "application/rss+xml")
    h.end_headers()
    h.wfile.write(b"<rss version='2.0'><channel>" + b" " * 400_000)
    h.close_connection = True


ROUTES: dict[str, Route] = {
    "/arxiv.rss": etag_feed,
    "/atom.gz": gzip_feed,
    "/moved": lambda h: _send(h, 301, b"", Location="/arxiv.rss"),
    "/loop": lambda h: _send(h, 302, b"", Location="/loop"),
    "/missing": lambda h: _send(h, 404, b"not here", Content_Type="text/plain"),
    "/broken": lambda h: _send(h, 500, b"oops", Content_Type="text/plain"),
    "/slow": slow,
    "/huge": oversize,
    "/page": lambda h: _send(
        h, 200, b"<!doctype html><html><body>Blog</body></html>", Content_Type="text/html"
    ),
    "/truncated": lambda h: _send(h, 200, RELEASES[: len(RELEASES) // 2]),
    "/same": lambda h: _send(h, 200, ATOM),
}


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64  # every source connects at once


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: ClassVar[list[tuple[str, str | None]]] = []

    def do_GET(self) -> None:
        Handler.seen.append((self.path, self.headers.get("User-Agent")))
        route = ROUTES.get(self.path)
        if route is None:
            _send(self, 404, b"", Content_Type="text/plain")
        else:
            route(self)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    Handler.seen.clear()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _add_all(store: Store, base: str) -> None:
    for path in ROUTES:
        store.sources.add(path.strip("/").replace(".", "-"), base + path)


def test_one_run_lands_the_good_sources_and_names_why_the_others_failed(
    store: Store, server: str
) -> None:
    _add_all(store, server)
    report = collect(store, now=NOW, policy=POLICY)
    by = {r.name: r for r in report.sources}
    errors = {name: r.error for name, r in by.items() if r.error}
    assert set(errors) == {"loop", "missing", "broken", "slow", "huge", "page"}
    assert "more than 3 redirects" in errors["loop"]
    assert "HTTP 404 Not Found" in errors["missing"]
    assert "HTTP 500" in errors["broken"]
    assert "timed out" in errors["slow"]
    assert "larger than" in errors["huge"]
    assert "an HTML page, not an RSS or Atom feed" in errors["page"]
    # Two sources per feed (a redirect to it, a plain copy): each item is stored once.
    assert by["moved"].error is None
    assert any(f"moved permanently to {server}/arxiv.rss" in w for w in by["moved"].warnings)
    assert by["arxiv-rss"].new + by["moved"].new == 3
    assert by["arxiv-rss"].unchanged + by["moved"].unchanged == 3
    assert by["atom-gz"].new + by["same"].new == 7
    assert by["truncated"].error is None and by["truncated"].new > 0
    assert any("ill-formed" in w for w in by["truncated"].warnings)
    assert store.signals.count() == 3 + 7 + by["truncated"].new
    assert all(agent == USER_AGENT for _, agent in Handler.seen)

    rows = {r["name"]: r for r in store.sources.list()}
    assert rows["missing"]["consecutive_errors"] == 1
    assert rows["missing"]["last_status"] == "error"
    assert "404" in rows["missing"]["last_error"]
    assert rows["arxiv-rss"]["etag"] == '"v1"'
    assert rows["arxiv-rss"]["item_count"] == 3


def test_second_run_costs_nothing_for_unchanged_feeds(store: Store, server: str) -> None:
    store.sources.add("arxiv", server + "/arxiv.rss")
    store.sources.add("same", server + "/same")
    store.sources.add("missing", server + "/missing")
    collect(store, now=NOW, policy=POLICY)
    before = {r["id"]: r["updated_at"] for r in _signals(store)}
    Handler.seen.clear()

    second = collect(store, now=NOW, policy=POLICY)
    statuses = {r.name: r.status for r in second.sources}
    assert statuses == {"arxiv": "not-modified", "same": "unchanged", "missing": "error"}
    assert {r["id"]: r["updated_at"] for r in _signals(store)} == before
    rows = {r["name"]: r for r in store.sources.list()}
    assert rows["missing"]["consecutive_errors"] == 2
    assert rows["arxiv"]["consecutive_errors"] == 0
    assert rows["arxiv"]["item_count"] == 3  # a 304 keeps what the last full fetch counted


def test_cli_exit_code_says_whether_any_source_failed(run, server: str) -> None:
    assert run("sources", "add", "good", server + "/arxiv.rss").exit_code == 0
    ok = run("collect")
    assert ok.exit_code == 0, ok.output
    assert "good: 3 new" in ok.output
    assert run("sources", "add", "gone", server + "/missing").exit_code == 0
    partial = run("collect")
    assert partial.exit_code == 3
    assert "gone:" in partial.output and "HTTP 404" in partial.output
    assert "good: unchanged (304 Not Modified)" in partial.output
    listing = run("sources", "list").output
    assert "not-modified" in listing and "last error:" in listing
    run("collect")
    third = run("collect")
    assert "failed 3 runs in a row: `newsletter sources disable gone`" in third.output


def test_unreachable_host_is_a_clear_error(store: Store) -> None:
    store.sources.add("nowhere", "http://127.0.0.1:9/feed")  # discard port: refused
    (result,) = collect(store, policy=POLICY).sources
    assert result.error is not None and "cannot connect" in result.error


def test_sources_are_fetched_concurrently(store: Store, server: str) -> None:
    """Three sources meet at a barrier on the server: only concurrent fetches get past it."""
    barrier = threading.Barrier(3, timeout=5)

    def meet(h: BaseHTTPRequestHandler) -> None:
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            _send(h, 503, b"fetched one at a time", Content_Type="text/plain")
            return
        _send(h, 200, ARXIV)

    for name in ("a", "b", "c"):
        ROUTES[f"/meet/{name}"] = meet
        store.sources.add(name, f"{server}/meet/{name}")
    try:
        # one server stands in for three hosts (one host alone gets two requests at a time)
        policy = FetchPolicy(read_timeout=10, concurrency=3, per_host=3)
        report = collect(store, policy=policy)
    finally:
        for name in ("a", "b", "c"):
            del ROUTES[f"/meet/{name}"]
    assert report.failed == []
    assert sorted(r.new for r in report.sources) == [0, 0, 3]


def _signals(store: Store) -> list[dict[str, object]]:
    return [store.signals.row(s.id) or {} for s in store.signals.list()]
