"""Sign-up timing: does the answer's timing tell a visitor whether an address is known?

The real web service (waitress, file sender) on 127.0.0.1, JSON sign-ups from an allowed
origin. Two comparisons, each over many requests in random order:
- first probe: new addresses against known ones that are owed a mail (active, no notice in the
  last hour), with a pause between requests so nothing from the previous one is still running;
- back to back: new addresses (a confirmation mail each) against addresses that asked within
  the hour (no mail), with no pause, so work a request leaves behind meets the next one.
Medians, and a bootstrap 95 % interval for the difference of medians: an interval holding 0
means the two kinds cannot be told apart by their median at this sample size.

`python -m benchmarks.bench_signup_timing` prints the section; it runs against whatever
`subscribers` is importable (PYTHONPATH=an older checkout measures that one).
"""

from __future__ import annotations

import os
import random
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx
import waitress

title = "Sign-up timing (new vs known address)"

ROUNDS = int(os.environ.get("BENCH_TIMING_ROUNDS", "400"))
PAUSE_S = 0.02
ORIGIN = "https://partner.example"


def _bootstrap(a: list[float], b: list[float], draws: int = 2000) -> tuple[float, float]:
    rng = random.Random(7)
    diffs = sorted(
        statistics.median(rng.choices(a, k=len(a))) - statistics.median(rng.choices(b, k=len(b)))
        for _ in range(draws)
    )
    return diffs[int(draws * 0.025)], diffs[int(draws * 0.975)]


def _measure(client: httpx.Client, jobs: list[tuple[str, str]], pause: float) -> dict:
    times: dict[str, list[float]] = {}
    for kind, email in jobs:
        started = time.perf_counter()
        answer = client.post("/subscribe", json={"email": email})
        elapsed = (time.perf_counter() - started) * 1000
        assert answer.status_code == 200, answer.text
        times.setdefault(kind, []).append(elapsed)
        if pause:
            time.sleep(pause)
    return times


def measure(rounds: int = ROUNDS) -> dict[str, dict[str, list[float]]]:
    from newsletter.settings import load_settings
    from subscribers import create_app

    with tempfile.TemporaryDirectory() as tmp:
        env = {
            "NEWSLETTER_DB": str(Path(tmp) / "bench.db"),
            "NEWSLETTER_OUTBOX": str(Path(tmp) / "outbox"),
            "NEWSLETTER_SECRET_KEY": "bench-secret-key-0123456789",
            "NEWSLETTER_CORS_ORIGINS": ORIGIN,
            "NEWSLETTER_SIGNUP_IP_LIMIT": "0",
            "NEWSLETTER_SIGNUP_ADDRESS_LIMIT": "0",
        }
        settings = load_settings(env, env_file=None)
        app = create_app(settings)
        store = app.extensions["newsletter"].store
        for i in range(rounds):
            store.subscribers.add(f"known{i}@example.org", name=None, status="active", actor="b")
        server = waitress.create_server(app, host="127.0.0.1", port=0, threads=8)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        url = f"http://127.0.0.1:{server.effective_port}"
        rng = random.Random(11)
        try:
            with httpx.Client(base_url=url, headers={"Origin": ORIGIN}, timeout=30) as client:
                for i in range(20):  # warm up: templates, connections, caches
                    client.post("/subscribe", json={"email": f"warm{i}@example.org"})
                app.extensions["newsletter"].mailer.drain()
                first = [("new", f"new{i}@example.org") for i in range(rounds)]
                first += [("known", f"known{i}@example.org") for i in range(rounds)]
                rng.shuffle(first)
                probe = _measure(client, first, PAUSE_S)
                app.extensions["newsletter"].mailer.drain()
                # known{i} asked a moment ago (no mail owed now); fresh ones are owed a mail
                again = [("new", f"fresh{i}@example.org") for i in range(rounds)]
                again += [("known", f"known{i}@example.org") for i in range(rounds)]
                rng.shuffle(again)
                burst = _measure(client, again, 0.0)
                app.extensions["newsletter"].mailer.drain()
        finally:
            server.trigger.pull_trigger(lambda: [d.close() for d in list(server._map.values())])
            thread.join(5)
            app.extensions["newsletter"].mailer.shutdown()
    return {"first probe": probe, "back to back": burst}


def run() -> str:
    results = measure()
    lines = [
        f"## {title}",
        "",
        f"{ROUNDS} sign-ups of each kind per comparison, in random order, one client over "
        "keep-alive (`benchmarks/bench_signup_timing.py`).",
        "",
        "| comparison | new: median ms | known: median ms | difference, 95 % interval |",
        "| --- | --- | --- | --- |",
    ]
    for name, times in results.items():
        new, known = times["new"], times["known"]
        low, high = _bootstrap(new, known)
        lines.append(
            f"| {name} | {statistics.median(new):.2f} | {statistics.median(known):.2f} "
            f"| {statistics.median(new) - statistics.median(known):+.2f} "
            f"({low:+.2f} to {high:+.2f}) |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(run())
