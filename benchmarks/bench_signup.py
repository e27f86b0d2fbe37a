"""Sign-up throughput: `newsletter serve --workers 2` (waitress) on 127.0.0.1 under wrk.

Form posts with a real CSRF cookie and token, a unique address each, so every request does
the whole job: CSRF check, per-IP and per-address limits, validation, a pending row with its
consent record, and a confirmation mail (file sender) on the workers' mail threads.
Afterwards every accepted sign-up must be in the database.
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import httpx

title = "Sign-up web service"

DURATION_S = 10
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "16"))
SERVER_THREADS = int(os.environ.get("BENCH_SERVER_THREADS", "8"))
THREADS = 2
TARGET_RPS = 300
TARGET_P99_MS = 100

LUA = """
local n = 0
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("id", threads)
end
function request()
  n = n + 1
  local body = "email=w" .. id .. "-" .. n .. "%40example.org&name=Bench&website=&csrf_token="
    .. TOKEN
  return wrk.format("POST", "/subscribe", HEADERS, body)
end
"""


#: wrk's summary as one line for `wrk_result`, appended to each benchmark's Lua script
WRK_DONE = """\
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d %d %d\\n", summary.requests, summary.duration,
    e.status, e.connect + e.read + e.write + e.timeout, latency:percentile(50),
    latency:percentile(99)))
end
"""


def wrk_result(out: str) -> tuple[int, float, int, int, float, float]:
    """(requests, seconds, non-2xx answers, socket errors, p50 ms, p99 ms) of a wrk run."""
    found = re.search(r"RESULT (\d+) (\d+) (\d+) (\d+) (\d+) (\d+)", out)
    if not found:
        raise RuntimeError(f"wrk gave no result:\n{out}")
    requests, duration_us, bad, errors, p50, p99 = map(int, found.groups())
    return requests, duration_us / 1e6, bad, errors, p50 / 1000, p99 / 1000


def with_wrk(section: str, measure: Callable[[Path], str]) -> str:
    """`measure(a temporary folder)`, or a section saying why it was not measured."""
    if shutil.which("wrk") is None:
        return f"## {section}\n\nNot measured: `wrk` is not installed (`apt-get install wrk`).\n"
    with tempfile.TemporaryDirectory() as tmp:
        return measure(Path(tmp))


def run() -> str:
    return with_wrk(title, _measure)


def _measure(tmp: Path) -> str:
    env = {
        **os.environ,
        "NEWSLETTER_DB": str(tmp / "bench.db"),
        "NEWSLETTER_OUTBOX": str(tmp / "outbox"),
        "NEWSLETTER_SECRET_KEY": "benchmark-secret-key-0123456789",
        "NEWSLETTER_SIGNUP_IP_LIMIT": "0",  # one load generator is one IP
        "NEWSLETTER_LOG_LEVEL": "warning",
    }
    server, port = start_server(env, tmp)
    try:
        url = f"http://127.0.0.1:{port}"
        page = _wait_for(url)
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token
        cookie = page.cookies["nl_csrf"]
        script = tmp / "signup.lua"
        script.write_text(
            f'TOKEN = "{token.group(1)}"\n'
            "HEADERS = {['Content-Type'] = 'application/x-www-form-urlencoded', "
            f"['Cookie'] = 'nl_csrf={cookie}'}}\n" + LUA + WRK_DONE
        )
        wrk = subprocess.run(
            ["wrk", f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{DURATION_S}s", "-s", str(script), url],
            capture_output=True,
            text=True,
            check=True,
        )
        paced = _paced(port, token.group(1), cookie)
    finally:
        server.send_signal(signal.SIGTERM)  # workers finish their queued mails first
        server.wait(120)
    requests, seconds, bad_status, socket_errors, p50_ms, p99_ms = wrk_result(
        wrk.stdout + wrk.stderr
    )
    accepted = requests - bad_status + paced.ok
    conn = sqlite3.connect(tmp / "bench.db")
    stored = conn.execute("SELECT count(*) FROM subscribers WHERE status = 'pending'").fetchone()[0]
    conn.close()
    mails = sum(1 for _ in (tmp / "outbox").rglob("*.eml"))
    rps = requests / seconds
    ok = "yes" if paced.rps >= TARGET_RPS * 0.98 and paced.p99_ms < TARGET_P99_MS else "**no**"
    return f"""## {title}

`newsletter serve --workers 2 --threads {SERVER_THREADS}` (waitress) on 127.0.0.1, driven by
`wrk -t{THREADS} -c{CONNECTIONS} -d{DURATION_S}s`: HTML form posts with a CSRF cookie and
token, a new address each; per-address limit on, per-IP limit off (one load generator).

| measure | this run | target |
| --- | --- | --- |
| sign-ups per second | {rps:,.0f} | ≥ {TARGET_RPS} |
| p50 latency | {p50_ms:.1f} ms | |
| p99 latency | {p99_ms:.1f} ms | < {TARGET_P99_MS} ms |
| requests / non-2xx / socket errors | {requests:,} / {bad_status} / {socket_errors} | \
all 2xx, no errors |
| **at a steady {TARGET_RPS}/s offered** ({PACED_THREADS} paced clients, {DURATION_S} s) | | |
| sign-ups per second achieved | {paced.rps:,.0f} | ≥ {TARGET_RPS} |
| p50 / p99 latency (from each request's scheduled time) | \
{paced.p50_ms:.1f} / {paced.p99_ms:.1f} ms | p99 < {TARGET_P99_MS} ms |
| requests / non-2xx or errors | {paced.sent:,} / {paced.sent - paced.ok} | all 2xx |
| every accepted sign-up pending in the database | {"yes" if stored >= accepted else "**no**"}: \
{stored:,} rows for {accepted:,} answers counted 200 | all |
| confirmation mails written by the file sender | {mails:,} | one each |
| target met at {TARGET_RPS}/s | {ok} | |

The first rows are the closed-loop maximum (wrk keeps every connection busy, so latency
there is mostly queueing); the paced rows offer the target rate and time each request from
when it was due, so a stall counts against every request it delays. There are a few more
rows than counted answers: wrk does not count the requests still in flight when it stops.
"""


PACED_THREADS = 8


class Paced:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.sent = 0
        self.ok = 0
        self.elapsed = 0.0
        self.lock = threading.Lock()

    @property
    def rps(self) -> float:
        return self.ok / self.elapsed if self.elapsed else 0.0

    def _percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0

    @property
    def p50_ms(self) -> float:
        return self._percentile(0.50)

    @property
    def p99_ms(self) -> float:
        return self._percentile(0.99)


def _paced(port: int, token: str, cookie: str) -> Paced:
    """Sign-ups offered at TARGET_RPS, a new address each."""
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "Cookie": f"nl_csrf={cookie}",
    }

    def sign_up(conn: http.client.HTTPConnection, thread: int, i: int) -> None:
        body = f"email=p{thread}-{i}%40example.org&csrf_token={quote(token)}"
        conn.request("POST", "/subscribe", body, headers)

    return paced_load(port, TARGET_RPS, PACED_THREADS, sign_up)


def paced_load(
    port: int,
    rate: int,
    threads: int,
    send: Callable[[http.client.HTTPConnection, int, int], None],
) -> Paced:
    """An open-loop client: each thread sends on a fixed schedule, whatever the answers do;
    `send(conn, thread, i)` makes request i of a thread; a 200 answer counts."""
    result = Paced()
    interval = threads / rate
    count = int(DURATION_S / interval)
    start = time.perf_counter() + 0.2

    def client(thread: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for i in range(count):
            due = start + (i + thread / threads) * interval
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            try:
                send(conn, thread, i)
                response = conn.getresponse()
                response.read()
                good = response.status == 200
            except OSError:
                conn.close()
                good = False
            with result.lock:
                result.sent += 1
                result.ok += good
                result.latencies.append(time.perf_counter() - due)
        conn.close()

    workers = [threading.Thread(target=client, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    result.elapsed = time.perf_counter() - start
    return result


def start_server(env: dict[str, str], cwd: Path) -> tuple[subprocess.Popen[str], int]:
    """`newsletter serve --workers 2` on a free port of 127.0.0.1, and that port."""
    server = subprocess.Popen(
        [
            *(sys.executable, "-c", "from newsletter.cli import main; main()", "serve"),
            *("--port", "0", "--workers", "2", "--threads", str(SERVER_THREADS)),
        ],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    line = server.stdout.readline()
    match = re.search(r"http://127\.0\.0\.1:(\d+)", line)
    if not match:
        server.kill()
        raise RuntimeError(f"serve did not start: {line!r}")
    return server, int(match.group(1))


def _wait_for(url: str) -> httpx.Response:
    deadline = time.monotonic() + 30
    while True:
        try:
            return httpx.get(url + "/", timeout=2)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
