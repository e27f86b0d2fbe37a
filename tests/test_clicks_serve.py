"""Clicks through the real `newsletter serve --workers 2`: every click is stored after a clean
stop, and a SIGKILL loses only what the workers had not written yet (at most 0.25 s)."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from newsletter.settings import load_settings
from subscribers.clicks import settle_all

BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:126.0) Gecko/20100101 Firefox/126.0"

pytestmark = pytest.mark.slow


@contextmanager
def served(env: dict[str, str], cwd: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    server = subprocess.Popen(
        [
            *(sys.executable, "-c", "from newsletter.cli import main; main()", "serve"),
            *("--port", "0", "--workers", "2", "--threads", "4"),
        ],
        env={**os.environ, **env},
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert server.stdout is not None
        match = re.search(r"http://127\.0\.0\.1:(\d+)", server.stdout.readline())
        assert match, "serve did not start"
        url = f"http://127.0.0.1:{match.group(1)}"
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/healthz", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "serve did not answer"
                time.sleep(0.1)
        yield server, url
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
        server.wait(60)


def children(parent: int) -> list[int]:
    """The processes whose parent is `parent` (from /proc: no procps needed)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent:
            found.append(int(stat.parent.name))
    return found


def stored(db: Path) -> tuple[int, int]:
    """(clicks classified, hits still queued)."""
    conn = sqlite3.connect(db)
    try:
        return (
            conn.execute("SELECT count(*) FROM clicks").fetchone()[0],
            conn.execute("SELECT count(*) FROM click_queue").fetchone()[0],
        )
    finally:
        conn.close()


def tracked_paths(db: Path) -> list[str]:
    conn = sqlite3.connect(db)
    try:
        return [f"/r/{key}" for (key,) in conn.execute("SELECT key FROM tracked_links")]
    finally:
        conn.close()


def click(url: str, paths: list[str], count: int) -> None:
    with httpx.Client(base_url=url, timeout=10, headers={"User-Agent": BROWSER}) as client:
        for n in range(count):
            assert client.get(paths[n % len(paths)]).status_code == 302


def test_a_clean_stop_stores_every_click_and_a_kill_loses_only_the_last_moment(
    run, env: dict[str, str], tmp_path: Path
) -> None:
    assert run("demo").exit_code == 0
    db = Path(env["NEWSLETTER_DB"])
    paths = tracked_paths(db)
    with served(env, tmp_path) as (server, url):
        click(url, paths, 60)
        server.send_signal(signal.SIGTERM)  # workers write what they hold; the parent classifies
        assert server.wait(60) == 0
    assert stored(db) == (60, 0)

    with served(env, tmp_path) as (server, url):
        click(url, paths, 40)
        time.sleep(1.0)  # longer than a flush interval: the workers have written these
        for pid in children(server.pid):  # the workers first: none gets to write on its way out
            os.kill(pid, signal.SIGKILL)
        server.kill()
        server.wait(30)
    classified, queued = stored(db)
    assert classified + queued == 100  # nothing written was lost to the kill
    settle_all(load_settings(env, env_file=None))  # what the next `serve` start does
    assert stored(db) == (100, 0)
