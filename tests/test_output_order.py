"""What a command prints comes out in the order it happened, on a terminal and in a log file,
and a run's summary is its last word."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from pathlib import Path

from test_send_support import SAMPLE, WEEK, add_subscribers, ready_week

from newsletter.settings import Settings
from newsletter.store import Store

SCRIPT = str(Path(sys.executable).parent / "newsletter")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\r")


def _environ(env: dict[str, str]) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    return {**clean, **env, "NEWSLETTER_SENDER": "file"}


def on_a_terminal(args: list[str], cwd: Path, env: dict[str, str]) -> list[str]:
    """Run the real CLI with stdout and stderr on one pseudo-terminal, as a user sees it."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [SCRIPT, *args],
        cwd=cwd,
        env=_environ(env),
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert process.wait(timeout=120) in (0, 3)
    text = ANSI.sub("", b"".join(chunks).decode(errors="replace"))
    return [line for line in text.splitlines() if line.strip()]


def in_one_pipe(args: list[str], cwd: Path, env: dict[str, str]) -> list[str]:
    """Run the real CLI with stdout and stderr into one pipe, like cron's `>> log 2>&1`."""
    done = subprocess.run(
        [SCRIPT, *args],
        cwd=cwd,
        env=_environ(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=120,
    )
    return [line for line in done.stdout.splitlines() if line.strip()]


def test_send_logs_nothing_after_its_summary_and_a_sent_dispatch_keeps_its_archive(
    run, store: Store, settings: Settings, env: dict[str, str], tmp_path: Path
) -> None:
    ready_week(store, settings)
    add_subscribers(store, 3)
    lines = on_a_terminal(["send", "--week", str(WEEK), "--force"], tmp_path, env)
    summary = next(i for i, line in enumerate(lines) if line.startswith(f"dispatch {WEEK}: 3 sent"))
    assert not [line for line in lines[summary:] if " INFO " in line or " WARNING " in line]
    assert any("web archive rebuilt" in line for line in lines[:summary])

    index = settings.web_archive_dir / "index.html"
    before = index.stat()
    again = run("send", "--week", str(WEEK))
    assert again.exit_code == 0 and "already sent; nothing to do" in again.output
    after = index.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_demo_prints_its_summary_last(tmp_path: Path, env: dict[str, str]) -> None:
    for run in (on_a_terminal, in_one_pipe):
        lines = run(["demo"], tmp_path, env)
        first = next(i for i, line in enumerate(lines) if line.startswith("collected "))
        assert lines[-1].startswith("outbox:")
        assert not [line for line in lines[first:] if " INFO " in line], run.__name__


def test_a_log_file_gets_the_lines_in_the_order_they_happened(
    tmp_path: Path, env: dict[str, str]
) -> None:
    feed = SAMPLE / "feeds" / "markets-wire.rss"
    for name, url in (("a-good", str(feed)), ("b-gone", str(tmp_path / "gone.xml"))):
        in_one_pipe(["sources", "add", name, url], tmp_path, env)
    lines = in_one_pipe(["collect"], tmp_path, env)
    assert [line.split(":")[0] for line in lines] == [
        "✓ a-good",
        "✗ b-gone",
        lines[2].split(":")[0],
    ]
    assert lines[2].startswith("2 sources, 2 new signals")
