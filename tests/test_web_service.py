"""The web service's configuration of waitress, attacked over real sockets: clients behind a
real reverse-proxy hop, spoofed X-Forwarded-For, huge bodies, slow and stalled connections."""

from __future__ import annotations

import http.client
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from test_web_live import WEB_ENV, Live, serving

from newsletter.settings import load_settings

ORIGIN = {"Origin": "https://partner.example"}


class _Forward(BaseHTTPRequestHandler):
    """A reverse proxy as nginx is usually set up: `proxy_set_header X-Forwarded-For
    $proxy_add_x_forwarded_for` (what the client sent, then the client's own address)."""

    upstream: tuple[str, int] = ("127.0.0.1", 0)
    protocol_version = "HTTP/1.1"

    def _forward(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() != "x-forwarded-for"}
        sent = self.headers.get("X-Forwarded-For")
        client = self.client_address[0]
        headers["X-Forwarded-For"] = f"{sent}, {client}" if sent else client
        upstream = http.client.HTTPConnection(*self.upstream, timeout=10)
        try:
            upstream.request(self.command, self.path, body=body, headers=headers)
            answer = upstream.getresponse()
            data = answer.read()
        finally:
            upstream.close()
        self.send_response(answer.status)
        for key, value in answer.getheaders():
            if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _forward

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def reverse_proxy(upstream_url: str) -> Iterator[str]:
    parts = urlsplit(upstream_url)
    handler = type("Forward", (_Forward,), {"upstream": (parts.hostname, parts.port)})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def client_at(address: str, base_url: str) -> httpx.Client:
    """A client whose connections come from `address` (any of 127.0.0.0/8 is this machine)."""
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=base_url, transport=transport, timeout=10, headers=ORIGIN)


@pytest.fixture
def proxied(env: dict[str, str]) -> Iterator[Live]:
    settings = load_settings(
        {
            **env,
            **WEB_ENV,
            "NEWSLETTER_PROXY_HOPS": "1",
            "NEWSLETTER_TRUSTED_PROXY": "127.0.0.1",
            "NEWSLETTER_SIGNUP_IP_LIMIT": "3",
        },
        env_file=None,
    )
    with serving(settings) as live:
        yield live


def test_clients_behind_the_proxy_get_their_own_limits_and_consent_records(
    proxied: Live,
) -> None:
    with (
        reverse_proxy(proxied.url) as front,
        client_at("127.0.0.2", front) as alice,
        client_at("127.0.0.3", front) as bob,
    ):
        answers = [alice.post("/subscribe", json={"email": f"a{i}@example.org"}) for i in range(4)]
        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        # the proxy's other client is not in alice's bucket
        assert bob.post("/subscribe", json={"email": "b@example.org"}).status_code == 200
        # what a client writes in X-Forwarded-For itself stays on the left, unused
        spoof = alice.post(
            "/subscribe", json={"email": "s@example.org"}, headers={"X-Forwarded-For": "192.0.2.7"}
        )
        assert spoof.status_code == 429
    for email, ip in (("a0@example.org", "127.0.0.2"), ("b@example.org", "127.0.0.3")):
        row = proxied.store.subscribers.get_by_email(email)
        assert row is not None and row["consent_ip"] == ip
    assert proxied.status("s@example.org") is None


def test_forwarded_headers_from_anyone_but_the_proxy_are_ignored(proxied: Live) -> None:
    with client_at("127.0.0.4", proxied.url) as direct:
        for i in range(3):
            answer = direct.post(
                "/subscribe",
                json={"email": f"d{i}@example.org"},
                headers={"X-Forwarded-For": f"198.51.100.{i}"},  # a new "client" each time
            )
            assert answer.status_code == 200
        over = direct.post(
            "/subscribe", json={"email": "d9@example.org"}, headers={"X-Forwarded-For": "1.2.3.4"}
        )
        assert over.status_code == 429  # one bucket: the peer's own address
    row = proxied.store.subscribers.get_by_email("d0@example.org")
    assert row is not None and row["consent_ip"] == "127.0.0.4"


def _largest_temporary_file(stop: threading.Event, found: list[int]) -> None:
    """Watch this process's open files (waitress runs in it) for spooled request bodies."""
    while not stop.is_set():
        for fd in os.listdir("/proc/self/fd"):
            with suppress(OSError):
                target = os.readlink(f"/proc/self/fd/{fd}")
                if target.startswith("/") and not target.startswith(("/dev", "/proc")):
                    if ".db" in target or target.endswith((".writers", "-wal", "-shm")):
                        continue
                    found.append(os.stat(f"/proc/self/fd/{fd}").st_size)
        time.sleep(0.005)


def _upload(url: str, head: bytes, chunks: Iterator[bytes]) -> tuple[bytes, int]:
    """Send `head` and then `chunks` until the server answers; (answer, body bytes sent)."""
    parts = urlsplit(url)
    sent = 0
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(head)
        sock.setblocking(False)
        answer = b""
        for chunk in chunks:
            with suppress(BlockingIOError):
                answer += sock.recv(65536)
            if answer:
                break
            try:
                sock.setblocking(True)
                sock.settimeout(5)
                sock.sendall(chunk)
                sock.setblocking(False)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
        sock.setblocking(True)
        sock.settimeout(10)
        with suppress(OSError):
            while b"\r\n\r\n" not in answer:
                more = sock.recv(65536)
                if not more:
                    break
                answer += more
    return answer, sent


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_huge_body_is_refused_before_it_is_spooled(live: Live, chunked: bool) -> None:
    size = 300 * 1024 * 1024
    block = b"x" * (256 * 1024)
    if chunked:
        head = b"POST /subscribe HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        frame = f"{len(block):x}\r\n".encode() + block + b"\r\n"
        chunks: Iterator[bytes] = iter([frame] * (size // len(block)))
    else:
        head = f"POST /subscribe HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n".encode()
        chunks = iter([block] * (size // len(block)))
    stop, found = threading.Event(), [0]
    watcher = threading.Thread(target=_largest_temporary_file, args=(stop, found))
    watcher.start()
    try:
        answer, sent = _upload(live.url, head, chunks)
    finally:
        stop.set()
        watcher.join()
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert sent < 16 * 1024 * 1024  # refused after the headers or the first MB, not 300 MB
    assert max(found) < 2 * 1024 * 1024  # nothing near the body's size went to disk
    assert live.client.get("/healthz").status_code == 200
    assert live.store.subscribers.counts()["pending"] == 0


def _slow_clients(url: str, count: int) -> list[socket.socket]:
    """Connections that send half a request and then nothing (slowloris)."""
    parts = urlsplit(url)
    opened = []
    for _ in range(count):
        sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
        sock.sendall(b"POST /subscribe HTTP/1.1\r\nHost: brief.example\r\nX-Slow: ")
        opened.append(sock)
    return opened


def test_healthz_answers_while_150_slow_connections_are_open(live: Live) -> None:
    slow = _slow_clients(live.url, 150)
    try:
        time.sleep(0.5)  # let the server take them all
        for _ in range(3):
            started = time.monotonic()
            answer = httpx.get(live.url + "/healthz", timeout=10)
            assert answer.status_code == 200 and answer.json() == {"status": "ok"}
            assert time.monotonic() - started < 5
        assert live.sign_up("still@example.org").status_code == 200
    finally:
        for sock in slow:
            sock.close()


def test_stalled_connections_are_closed_after_the_channel_timeout(env: dict[str, str]) -> None:
    settings = load_settings({**env, "NEWSLETTER_WEB_CHANNEL_TIMEOUT": "2"}, env_file=None)
    with serving(settings) as live:
        [stalled] = _slow_clients(live.url, 1)
        stalled.settimeout(15)
        started = time.monotonic()
        try:
            data = stalled.recv(1024)
        except ConnectionResetError:
            data = b""
        finally:
            stalled.close()
        assert data == b""  # closed by the server, not answered
        assert time.monotonic() - started < 10


def test_waitress_options_follow_the_settings(env: dict[str, str], tmp_path: Path) -> None:
    from subscribers.server import waitress_options

    plain = waitress_options(load_settings(env, env_file=None))
    assert "trusted_proxy" not in plain and plain["clear_untrusted_proxy_headers"] is True
    assert plain["max_request_body_size"] == 1024 * 1024
    behind = waitress_options(
        load_settings(
            {**env, "NEWSLETTER_PROXY_HOPS": "2", "NEWSLETTER_TRUSTED_PROXY": "10.0.0.5"},
            env_file=None,
        )
    )
    assert behind["trusted_proxy"] == "10.0.0.5" and behind["trusted_proxy_count"] == 2
    assert behind["trusted_proxy_headers"] == {"x-forwarded-for", "x-forwarded-proto"}


def test_archive_serves_only_regular_files_inside_its_folder(
    env: dict[str, str], tmp_path: Path
) -> None:
    archive = tmp_path / "archive"
    (archive / "2026-W24").mkdir(parents=True)
    (archive / "index.html").write_text("<h1>Past issues</h1>")
    (archive / "feed.xml").write_text("<rss/>")
    (archive / "2026-W24" / "index.html").write_text("<p>Issue 1</p>")
    secret = tmp_path / "outside.txt"
    secret.write_text("the signing key")
    (archive / "leak.html").symlink_to(secret)
    (archive / "etc").symlink_to("/etc")
    (archive / "2026-W24" / "up").symlink_to(tmp_path)
    (archive / ".env").write_text("NEWSLETTER_SECRET_KEY=x")
    (archive / ".git").mkdir()
    (archive / ".git" / "config").write_text("[core]")
    (archive / ".archive.old").mkdir()
    (archive / ".archive.old" / "index.html").write_text("old")
    settings = load_settings({**env, "NEWSLETTER_WEB_ARCHIVE_DIR": str(archive)}, None)
    with serving(settings) as live:
        assert "Past issues" in live.client.get("/archive/").text
        issue = live.client.get("/archive/2026-W24/")
        assert issue.status_code == 200 and "Issue 1" in issue.text
        assert issue.headers["content-type"].startswith("text/html")
        assert "unsafe-inline" in issue.headers["content-security-policy"]
        again = live.client.get(
            "/archive/2026-W24/", headers={"If-None-Match": issue.headers["etag"]}
        )
        assert again.status_code == 304
        assert (
            live.client.get("/archive/feed.xml")
            .headers["content-type"]
            .startswith(("application/xml", "text/xml"))
        )
        moved = live.client.get("/archive/2026-W24")
        assert moved.status_code == 308 and moved.headers["location"].endswith("/archive/2026-W24/")
        for path in (
            "/archive/leak.html",
            "/archive/etc/passwd",
            "/archive/etc/hostname",
            "/archive/2026-W24/up/outside.txt",
            "/archive/.env",
            "/archive/.git/config",
            "/archive/.archive.old/index.html",
            "/archive/%2e%2e/outside.txt",
            "/archive/..%2foutside.txt",
            "/archive/2026-W24/..%2f..%2foutside.txt",
            "/archive//etc/passwd",
            "/archive/nothing.html",
        ):
            response = live.client.get(path, follow_redirects=True)
            assert response.status_code == 404, path
            assert "signing key" not in response.text and "root:" not in response.text
