"""Feeds over https are verified, redirects from http included, and the rest of a run needs
no TLS at all; `collect` imports httpx without its command-line client."""

from __future__ import annotations

import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from test_send_support import self_signed

from newsletter.signals.collect import collect
from newsletter.signals.fetch import FetchPolicy
from newsletter.store import Store

FEED = (Path(__file__).parent / "fixtures" / "feeds" / "realworld").glob("*.atom")
POLICY = FetchPolicy(read_timeout=5.0, connect_timeout=5.0)


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """An https feed with a certificate nobody trusts, and an http URL redirecting to it."""
    body = next(iter(FEED)).read_bytes()
    cert, key = self_signed(tmp_path)

    class Feed(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/atom+xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    secure = ThreadingHTTPServer(("127.0.0.1", 0), Feed)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    secure.socket = context.wrap_socket(secure.socket, server_side=True)
    https_url = f"https://127.0.0.1:{secure.server_address[1]}/feed.atom"

    class Redirect(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(301)
            self.send_header("Location", https_url)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    plain = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threads = [
        threading.Thread(target=s.serve_forever, args=(0.05,), daemon=True) for s in (secure, plain)
    ]
    for thread in threads:
        thread.start()
    yield https_url, f"http://127.0.0.1:{plain.server_address[1]}/feed.atom"
    for server in (secure, plain):
        server.shutdown()
        server.server_close()


def test_https_is_verified_even_after_a_redirect_from_http(
    store: Store, servers: tuple[str, str]
) -> None:
    https_url, redirecting = servers
    store.sources.add("direct", https_url)
    store.sources.add("redirected", redirecting)
    report = collect(store, policy=POLICY)
    assert [r.name for r in report.failed] == ["direct", "redirected"]
    for result in report.failed:
        assert result.error and "certificate" in result.error.lower(), result.error
    assert store.signals.count() == 0


def test_collect_loads_httpx_without_its_command_line_client() -> None:
    probe = (
        "import ssl, sys\n"
        "made = []\n"
        "real = ssl.create_default_context\n"
        "ssl.create_default_context = lambda *a, **k: made.append(1) or real(*a, **k)\n"
        "from newsletter.signals.fetch import make_client\n"
        "with make_client() as client: pass\n"
        "print('rich' in sys.modules, 'pygments' in sys.modules, len(made))\n"
        "import importlib\n"
        "cli = importlib.import_module('httpx._main')\n"
        "print(callable(cli.main), 'rich' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    first, second = done.stdout.splitlines()
    assert first == "False False 0"  # no CLI loaded; no CA bundle for a client not used on https
    assert second == "True True"  # the real CLI module is still there when asked for
