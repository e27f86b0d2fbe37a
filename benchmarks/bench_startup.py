"""Start-up of every command: a fresh `newsletter ... --help` process per command and group, and
a few real runs on an empty database, against a bare `python -c "import click"` process.

Processes run round-robin (one of each per round), so the machine's drift falls on all alike;
each figure is the median of its rounds. Target: every command at most 3x the bare process.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import click

from newsletter.cli import cli

title = "Command-line start-up"

ROUNDS = int(os.environ.get("BENCH_STARTUP_ROUNDS", "9"))
TARGET = 3.0
BARE = "bare `python -c 'import click'`"
#: real runs, not --help: settings, store and a query (an empty, up-to-date database)
RUNS = (
    ("--version",),
    ("sources", "list"),
    ("subscribers", "list"),
    ("signals", "list"),
    ("collect",),
)


def help_commands(group: click.Group, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """`--help` of the root, every group and every command under it."""
    yield (*path, "--help")
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if isinstance(command, click.Group):
            yield from help_commands(command, (*path, name))
        elif command is not None:
            yield (*path, name, "--help")


def _timed(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, check=False)
    took = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit {done.returncode}: {done.stderr.decode()}")
    return took


def measure(rounds: int = ROUNDS) -> dict[str, list[float]]:
    script = str(Path(sys.executable).parent / "newsletter")
    commands = [*help_commands(cli), *RUNS]
    times: dict[str, list[float]] = {BARE: []}
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
        env["NEWSLETTER_DB"] = str(cwd / "bench.db")
        _timed([script, "init"], cwd, env)
        for _ in range(rounds):
            times[BARE].append(_timed([sys.executable, "-c", "import click"], cwd, env))
            for args in commands:
                times.setdefault(" ".join(args), []).append(_timed([script, *args], cwd, env))
    return times


def run() -> str:
    times = measure()
    bare = statistics.median(times.pop(BARE))
    rows, worst = [], ("", 0.0)
    for label, values in times.items():
        median = statistics.median(values)
        ratio = median / bare
        worst = max(worst, (label, ratio), key=lambda pair: pair[1])
        verdict = "met" if ratio <= TARGET else "MISSED"
        rows.append(f"| `newsletter {label}` | {median * 1000:.0f} ms | {ratio:.2f}x | {verdict} |")
    met = sum(1 for row in rows if row.endswith("| met |"))
    lines = [
        f"## {title}",
        "",
        f"A fresh process per command, {ROUNDS} rounds run round-robin, medians. The bare"
        f" `python -c 'import click'` process took **{bare * 1000:.0f} ms**; target: every"
        f" command at most {TARGET:g}x that ({TARGET * bare * 1000:.0f} ms). {met} of"
        f" {len(rows)} met; the slowest is `newsletter {worst[0]}` at {worst[1]:.2f}x."
        " `--help` lines import the command's module only; the last rows are real runs on an"
        " empty, up-to-date database (settings, store, one query).",
        "",
        "| command | median | ratio to bare | ≤ 3x |",
        "| --- | ---: | ---: | --- |",
        *rows,
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(run())
