"""`newsletter serve` itself: two waitress worker processes on one socket, stopped cleanly."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx


def test_serve_runs_two_workers_and_stops_on_sigterm(env: dict[str, str], tmp_path: Path) -> None:
    server = subprocess.Popen(
        [sys.executable, "-c", "from newsletter.cli import main; main()", "serve", "--port", "0"],
        env={**env, "PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+) \(2 worker", line)
        assert match, line
        url = f"http://127.0.0.1:{match.group(1)}"
        with httpx.Client(base_url=url, timeout=10) as client:
            health = None
            for _ in range(50):  # workers may still be starting
                try:
                    health = client.get("/healthz")
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            assert health is not None and health.json() == {"status": "ok"}
            token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/").text)
            assert token
            answer = client.post(
                "/subscribe", data={"email": "served@example.org", "csrf_token": token.group(1)}
            )
            assert answer.status_code == 200
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(30) == 0
    # the confirmation mail was sent before the worker exited
    assert list((tmp_path / "outbox").rglob("*.eml"))
