"""`--links`: every link fetched for real from a local HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from newsletter.checks.links import check_links
from newsletter.checks.parsed import Parsed
from newsletter.checks.report import Level


class Handler(BaseHTTPRequestHandler):
    seen: ClassVar[list[tuple[str, str]]] = []

    def log_message(self, *args: object) -> None:
        pass

    def answer(self) -> None:
        Handler.seen.append((self.command, self.path))
        if self.path == "/hang":
            time.sleep(3)
        if self.path == "/moved":
            self.send_response(301)
            self.send_header("Location", "/ok")
        elif self.path == "/temporary":
            self.send_response(302)
            self.send_header("Location", "/ok")
        elif self.path == "/get-only" and self.command == "HEAD":
            self.send_response(405)
        elif self.path in ("/ok", "/get-only"):
            self.send_response(200)
        else:
            self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_HEAD = do_GET = answer


@pytest.fixture
def site() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    Handler.seen = []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def message_linking(*urls: str) -> Parsed:
    links = "".join(f'<p><a href="{u}">link</a></p>' for u in urls)
    html = f"<html><body>{links}<a href='mailto:x@y.org'>mail</a></body></html>"
    return Parsed(b"", None, html, "text")  # type: ignore[arg-type]


def test_broken_moved_and_hanging_links_are_reported(site: str) -> None:
    urls = [f"{site}/ok", f"{site}/moved", f"{site}/temporary", f"{site}/missing", f"{site}/hang"]
    started = time.monotonic()
    found = check_links(message_linking(*urls, f"{site}/ok"), timeout=0.5)
    assert time.monotonic() - started < 2.5, "links are checked concurrently, with the timeout"
    by_level = {(f.level, f.message) for f in found}
    assert (Level.ERROR, f"broken link {site}/missing: HTTP 404") in by_level
    assert (Level.ERROR, f"broken link {site}/hang: timed out") in by_level
    assert (Level.WARNING, f"{site}/moved moved permanently to {site}/ok") in by_level
    assert (Level.INFO, f"{site}/temporary redirects to {site}/ok") in by_level
    assert (Level.INFO, "checked 5 link(s): 2 broken, 2 redirected") in by_level
    assert not any(f"{site}/ok" in m and lvl == Level.ERROR for lvl, m in by_level)
    assert Handler.seen.count(("HEAD", "/ok")) >= 1  # HEAD first, the page body is never needed


def test_a_server_refusing_head_is_retried_with_get(site: str) -> None:
    found = check_links(message_linking(f"{site}/get-only"), timeout=2)
    assert [f.level for f in found] == [Level.INFO]
    assert ("GET", "/get-only") in Handler.seen


def test_our_own_pages_that_appear_when_sent_are_not_broken_yet(site: str) -> None:
    """A signal's page and the archive copy 404 until the dispatch goes out."""
    pages = (f"{site}/signals/", f"{site}/archive/")
    urls = [f"{site}/signals/x-12345678/", f"{site}/archive/2026-W24/", f"{site}/missing"]
    found = check_links(message_linking(*urls), timeout=2, published_on_send=pages)
    errors = [f.message for f in found if f.level == Level.ERROR]
    assert errors == [f"broken link {site}/missing: HTTP 404"]
    assert (Level.INFO, "checked 3 link(s): 1 broken, 0 redirected") in {
        (f.level, f.message) for f in found
    }


def test_an_unreachable_host_is_broken_not_a_crash() -> None:
    found = check_links(message_linking("http://127.0.0.1:9/"), timeout=1)
    assert found[0].level == Level.ERROR and "ConnectError" in found[0].message


def test_check_links_from_the_command_line(run, site: str, tmp_path) -> None:
    from email.message import EmailMessage

    mime = EmailMessage()
    mime["Subject"] = "Links"
    mime.set_content("text part")
    mime.add_alternative(
        f'<html><body><a href="{site}/ok">fine</a> <a href="{site}/missing">gone</a></body></html>',
        subtype="html",
    )
    eml = tmp_path / "links.eml"
    eml.write_bytes(mime.as_bytes())
    args = ("check", "--eml", str(eml), "--skip=spam", "--skip=render", "--skip=lint")
    without = run(*args)  # links are only fetched when asked: the network is opt-in
    assert without.exit_code == 0 and "broken link" not in without.stdout
    assert ("HEAD", "/missing") not in Handler.seen
    result = run(*args, "--links", "--link-timeout", "1", "--json")
    assert result.exit_code == 1
    errors = [f["message"] for f in json.loads(result.stdout)["findings"] if f["level"] == "error"]
    assert errors == [f"broken link {site}/missing: HTTP 404"]
