"""Tracked-link redirects: `GET /r/<token>` on `newsletter serve --workers 2` (waitress) under wrk.

The demo's dispatch is sent (file sender) so its links are stored as a real send stores them;
wrk then follows them, rotating over every link, with a browser's user agent. Afterwards the
server is stopped with SIGTERM (workers write what they hold, the parent classifies the rest)
and the clicks stored are compared with the requests wrk made. A second run SIGKILLs the
server in the middle of the load to measure what a kill loses.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.bench_signup import (
    SERVER_THREADS,
    WRK_DONE,
    start_server,
    with_wrk,
    wrk_result,
)

title = "Click redirects"

DURATION_S = 10
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "16"))
THREADS = 2
TARGET_RPS = 2000
TARGET_P99_MS = 30
BROWSER = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"
    " Version/17.4 Safari/605.1.15"
)

#: the paced run: each of PACED_CONNECTIONS waits PACED_DELAY_MS between its requests, so the
#: offered rate is about TARGET_RPS (a little less: each also waits for its answer)
PACED_CONNECTIONS = 32
PACED_DELAY_MS = PACED_CONNECTIONS * 1000 // (TARGET_RPS * 5 // 4)
PACE = "function delay() return %d end\n"
LUA = """
local n = 0
function request()
  n = n + 1
  return wrk.format("GET", PATHS[(n %% #PATHS) + 1], {["User-Agent"] = "%s"})
end
"""


def run() -> str:
    return with_wrk(title, _measure)


def _wrk(
    port: int, script: Path, seconds: int, connections: int = CONNECTIONS
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            *("wrk", f"-t{THREADS}", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s"),
            *("-s", str(script), f"http://127.0.0.1:{port}"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _stored(db: Path) -> tuple[int, int, int]:
    """(clicks classified, of them human, still queued)."""
    conn = sqlite3.connect(db)
    try:
        raw, human = conn.execute("SELECT count(*), coalesce(sum(human), 0) FROM clicks").fetchone()
        totals = conn.execute("SELECT coalesce(sum(human + automated), 0) FROM click_totals")
        queued = conn.execute("SELECT count(*) FROM click_queue").fetchone()[0]
        return raw + totals.fetchone()[0], human, queued
    finally:
        conn.close()


def _reset(db: Path) -> None:
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("DELETE FROM clicks")
        conn.execute("DELETE FROM click_queue")
        conn.execute("DELETE FROM click_totals")
    conn.close()


def _measure(tmp: Path) -> str:
    env = {
        **os.environ,
        "NEWSLETTER_DB": str(tmp / "bench.db"),
        "NEWSLETTER_OUTBOX": str(tmp / "outbox"),
        "NEWSLETTER_WEB_ARCHIVE_DIR": str(tmp / "archive"),
        "NEWSLETTER_SECRET_KEY": "benchmark-secret-key-0123456789",
        "NEWSLETTER_LOG_LEVEL": "warning",
    }
    demo = [sys.executable, "-c", "from newsletter.cli import main; main()", "demo"]
    subprocess.run(demo, env=env, cwd=tmp, check=True, capture_output=True)
    conn = sqlite3.connect(tmp / "bench.db")
    keys = [k for (k,) in conn.execute("SELECT key FROM tracked_links WHERE frozen = 1")]
    conn.close()
    script = tmp / "clicks.lua"
    paths = ", ".join(f'"/r/{key}"' for key in keys)
    script.write_text(f"PATHS = {{{paths}}}\n" + LUA % BROWSER + WRK_DONE)
    paced_script = tmp / "paced.lua"
    paced_script.write_text(script.read_text() + PACE % PACED_DELAY_MS)

    load_before = os.getloadavg()
    server, port = start_server(env, tmp)
    try:
        _wait(port)
        _reset(tmp / "bench.db")  # the readiness probe counted nothing, but start clean
        wrk = _wrk(port, script, DURATION_S)
        out, _ = wrk.communicate(timeout=DURATION_S + 60)
        paced = _wrk(port, paced_script, DURATION_S, PACED_CONNECTIONS)
        paced_out, _ = paced.communicate(timeout=DURATION_S + 60)
        load_during = os.getloadavg()
    finally:
        server.send_signal(signal.SIGTERM)  # workers write their clicks, the parent classifies
        server.wait(120)
    requests, seconds, bad, errors, p50, p99 = wrk_result(out)
    p_requests, p_seconds, p_bad, p_errors, p_p50, p_p99 = wrk_result(paced_out)
    requests += p_requests  # both runs' clicks are in the database
    stored, human, queued = _stored(tmp / "bench.db")

    # the same load, and a SIGKILL of the whole server 5 s into it
    _reset(tmp / "bench.db")
    killed_server, port = start_server(env, tmp)
    _wait(port)
    wrk = _wrk(port, script, 8)
    time.sleep(5)
    _kill_tree(killed_server.pid)
    killed_out, _ = wrk.communicate(timeout=60)
    killed_server.wait(30)
    killed_requests = wrk_result(killed_out)[0]
    killed_stored = sum(_stored(tmp / "bench.db")[::2])

    rps = (requests - p_requests) / seconds
    p_rps = p_requests / p_seconds
    met = p_rps >= TARGET_RPS * 0.95 and p_p99 < TARGET_P99_MS
    slack = CONNECTIONS + PACED_CONNECTIONS
    counted = "yes" if requests <= stored <= requests + slack else "**no**"
    lost = max(0, killed_requests - killed_stored)
    return f"""## {title}

`newsletter serve --workers 2 --threads {SERVER_THREADS}` (waitress) on 127.0.0.1, the demo's
dispatch sent (its {len(keys)} tracked links stored as a real send stores them), driven by
`wrk -t{THREADS} -c{CONNECTIONS} -d{DURATION_S}s` rotating over every link with a browser's user
agent. Load average (1, 5, 15 min) before: {_load(load_before)}; at the end of the load:
{_load(load_during)} (2 cores, shared with other sessions' test suites).

| measure | this run | target |
| --- | --- | --- |
| **closed loop** (16 connections, each sends as soon as answered) | | |
| redirects per second | {rps:,.0f} | ≥ {TARGET_RPS:,} |
| p50 / p99 latency | {p50:.1f} / {p99:.1f} ms | |
| requests / non-3xx / socket errors | {requests - p_requests:,} / {bad} / {errors} | all 302 |
| **paced** ({PACED_CONNECTIONS} connections, {PACED_DELAY_MS} ms between requests) | | |
| redirects per second | {p_rps:,.0f} | ≥ {TARGET_RPS:,} |
| p50 / p99 latency | {p_p50:.1f} / {p_p99:.1f} ms | p99 < {TARGET_P99_MS} ms |
| requests / non-3xx / socket errors | {p_requests:,} / {p_bad} / {p_errors} | all 302 |
| **counting** (both runs) | | |
| clicks stored after a clean stop (SIGTERM) | {stored:,} ({queued} left queued) \
| ≥ the {requests:,} requests wrk counted |
| every click counted | {counted} (wrk leaves out the ≤ {CONNECTIONS + PACED_CONNECTIONS} \
in flight when it stops) | yes |
| classified human / automated | {human:,} / {stored - human:,} | automated: one client \
following every link within seconds is a scanner's burst |
| **SIGKILL of the server 5 s into an 8 s load** | | |
| requests answered before the kill / clicks stored | {killed_requests:,} / {killed_stored:,} | |
| clicks lost to the kill | {lost:,} | the hits each worker had not written yet (about its last \
0.25 s) |
| target met | {"yes" if met else "**no**"} | |

The closed-loop rows are the maximum (their latency is mostly queueing); the paced rows offer
about the target and show the latency a reader gets at that rate. A redirect answers from
memory (the frozen links are cached per worker) and appends its hit to an in-memory queue; a
thread in each worker writes the queue every 0.25 s in one transaction, and serve's parent
process classifies hits older than 7 s (burst detection needs their neighbours) once a second,
so the database sees a few transactions a second, not one per click. All of this load comes
from one client with one user agent that follows every link at once: the report counts it as
automated, as it should.
"""


def _load(values: tuple[float, float, float]) -> str:
    return " / ".join(f"{v:.1f}" for v in values)


def _wait(port: int) -> None:
    import httpx

    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
            return
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _kill_tree(pid: int) -> None:
    """SIGKILL the serve parent and its workers (children first: nobody gets to flush)."""
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    for child in found.stdout.split():
        os.kill(int(child), signal.SIGKILL)
    os.kill(pid, signal.SIGKILL)
