"""A feed that has not changed is not parsed again, whether it was good or broken last time."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

import newsletter.signals.parse
from newsletter.signals.collect import collect
from newsletter.signals.fetch import FetchPolicy
from newsletter.store import Store

FEEDS = Path(__file__).parent / "fixtures" / "feeds"
GOOD = (FEEDS / "realworld" / "github-releases_python-cpython.atom").read_bytes()
BROKEN = b"<?xml version='1.0'?><data><x>not a feed</x></data>"
STAMP = formatdate(1_700_000_000, usegmt=True)


class Feed(BaseHTTPRequestHandler):
    body: ClassVar[bytes] = BROKEN
    validators: ClassVar[bool] = True
    hits: ClassVar[list[int]] = []

    def do_GET(self) -> None:
        if self.validators and self.headers.get("If-Modified-Since") == STAMP:
            self.hits.append(304)
            self.send_response(304)
            self.end_headers()
            return
        self.hits.append(200)
        self.send_response(200)
        self.send_header("Content-Type", "application/atom+xml")
        if self.validators:
            self.send_header("Last-Modified", STAMP)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def feed_url() -> Iterator[str]:
    Feed.body, Feed.validators, Feed.hits = BROKEN, True, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Feed)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/feed.atom"
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every feed body handed to the parser, by source name."""
    calls: list[str] = []
    real = newsletter.signals.parse.parse_feed

    def counting(*args: object, **kwargs: object) -> object:
        calls.append(str(kwargs.get("name")))
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(newsletter.signals.parse, "parse_feed", counting)
    return calls


@pytest.mark.parametrize("validators", [True, False], ids=["answers-304", "same-body"])
def test_an_unchanged_broken_feed_fails_again_without_being_parsed(
    store: Store, feed_url: str, parses: list[str], validators: bool
) -> None:
    Feed.validators = validators
    store.sources.add("broken", feed_url)
    first = collect(store)
    assert parses == ["broken"] and first.failed
    error = first.failed[0].error
    assert error and "not an RSS or Atom feed" in error and not error.startswith("broken:")

    again = collect(store)
    assert parses == ["broken"], "the same broken bytes were parsed again"
    assert [r.error for r in again.failed] == [error]
    assert Feed.hits[-1] == (304 if validators else 200)
    row = store.sources.get("broken")
    assert row is not None and row["consecutive_errors"] == 2 and row["last_error"] == error


def test_a_broken_feed_that_is_fixed_is_parsed_and_lands(
    store: Store, feed_url: str, parses: list[str]
) -> None:
    store.sources.add("broken", feed_url)
    collect(store)
    Feed.body, Feed.validators = GOOD, False  # the publisher fixed it (a new body)
    fixed = collect(store)
    assert parses == ["broken", "broken"]
    assert not fixed.failed and fixed.new > 0
    row = store.sources.get("broken")
    assert row is not None and row["consecutive_errors"] == 0 and row["last_status"] == "ok"
    assert collect(store).sources[0].status == "unchanged" and len(parses) == 2


def test_the_failure_line_names_the_source_once(run, feed_url: str) -> None:
    run("sources", "add", "rss-html", feed_url)
    result = run("collect")
    assert result.exit_code == 3
    line = next(line for line in result.output.splitlines() if line.startswith("✗"))
    assert line.startswith("✗ rss-html: not an RSS or Atom feed"), line
    assert line.count("rss-html") == 1


class Counting(BaseHTTPRequestHandler):
    """Answers after a short wait, counting the requests in flight at once, per Host header."""

    lock = threading.Lock()
    now: ClassVar[dict[str, int]] = {}
    most: ClassVar[dict[str, int]] = {}

    def do_GET(self) -> None:
        host = self.headers["Host"].split(":")[0]
        with self.lock:
            self.now[host] = self.now.get(host, 0) + 1
            self.most[host] = max(self.most.get(host, 0), self.now[host])
        time.sleep(0.05)
        with self.lock:
            self.now[host] -= 1
        self.send_response(304)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_one_host_gets_two_requests_at_a_time_and_hosts_take_turns(store: Store) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Counting)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    port = server.server_address[1]
    try:
        for n in range(8):
            store.sources.add(f"a{n}", f"http://127.0.0.1:{port}/a{n}.xml")
            store.sources.add(f"b{n}", f"http://localhost:{port}/b{n}.xml")
        report = collect(store, policy=FetchPolicy(concurrency=8))
    finally:
        server.shutdown()
        server.server_close()
    assert len(report.sources) == 16 and not report.failed
    assert Counting.most == {"127.0.0.1": 2, "localhost": 2}
