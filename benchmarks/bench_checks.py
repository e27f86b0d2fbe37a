"""Pre-flight checks: what `newsletter check` (and so `send`'s pre-flight) costs per dispatch.

The demo's dispatch as the sample reader gets it; every check on it, each timed on its own,
then the link checker against a loopback server whose every answer takes 50 ms.
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from newsletter.checks import Tools, check_message, sample_message
from newsletter.checks.auth import DkimConfig, check_dkim, keygen
from newsletter.checks.content import check_content
from newsletter.checks.links import fetch_links
from newsletter.checks.lint import check_lint
from newsletter.checks.parsed import Parsed
from newsletter.checks.render import check_render
from newsletter.checks.size import check_size
from newsletter.checks.spam import check_spam
from newsletter.demo import SAMPLE_WEEK, run_demo
from newsletter.settings import load_settings
from newsletter.store import Store

title = "Pre-flight checks"

LINKS = 200
LINK_DELAY_S = 0.05


def _median_ms(job: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        job()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


class _Slow(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_HEAD(self) -> None:
        time.sleep(LINK_DELAY_S)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def _links_s(concurrency: int) -> float:
    import asyncio

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Slow)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        started = time.perf_counter()
        results = asyncio.run(
            fetch_links([f"{base}/{i}" for i in range(LINKS)], concurrency=concurrency)
        )
        elapsed = time.perf_counter() - started
    finally:
        server.shutdown()
        server.server_close()
    assert not any(r.broken for r in results)
    return elapsed


def run() -> str:
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(
            {
                "NEWSLETTER_DB": f"{tmp}/bench.db",
                "NEWSLETTER_OUTBOX": f"{tmp}/outbox",
                "NEWSLETTER_SECRET_KEY": "benchmark-secret",
                "NEWSLETTER_LOG_LEVEL": "warning",
            },
            env_file=None,
        )
        run_demo(settings, Path(tmp) / "preview.html")
        store = Store.open(settings.db)
        try:
            raw = sample_message(store, settings, SAMPLE_WEEK).as_bytes()
        finally:
            store.close()
        message = Parsed.from_bytes(raw)
        tools = Tools.find()
        pair = keygen("bench", "example.org", Path(tmp) / "dkim")
        dkim = DkimConfig(pair.key_file, "bench", "example.org")

        def static() -> None:
            check_size(message)
            check_lint(message, production=False)
            check_content(message, production=False)

        rows = [
            ("parse + size + lint + content", _median_ms(static, 50), 50),
            (
                "DKIM sign + verify",
                _median_ms(lambda: check_dkim(message, dkim, "example.org"), 20),
                50,
            ),
        ]
        if tools.spamassassin:
            rows.append(
                (
                    "SpamAssassin `-L -t`",
                    _median_ms(lambda: check_spam(message, tools.spamassassin), 3),
                    5000,
                )
            )
        if tools.chromium:
            rows.append(
                (
                    "Chromium at 375 + 600 px",
                    _median_ms(lambda: check_render(message.html, tools.chromium), 3),
                    5000,
                )
            )
        whole = _median_ms(lambda: check_message(raw, settings, tools=tools), 2)
        rows.append(("whole `newsletter check` (no --links)", whole, 10000))
        serial, parallel = _links_s(1), _links_s(8)

    lines = [
        f"## {title}",
        "",
        f"The demo dispatch (HTML {len(message.html.encode()) / 1024:.0f} KB), medians.",
        "",
        "| check | measured | target |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {name} | {ms:,.1f} ms | < {target:,} ms |" for name, ms, target in rows]
    missing = [
        n for n, p in (("spamassassin", tools.spamassassin), ("chromium", tools.chromium)) if not p
    ]
    if missing:
        lines += ["", f"Not measured: {', '.join(missing)} not installed."]
    lines += [
        "",
        f"`--links`: {LINKS} links, each answer {LINK_DELAY_S * 1000:.0f} ms, loopback:"
        f" one at a time {serial:.2f} s, 8 in flight {parallel:.2f} s"
        f" ({serial / parallel:.1f}x; target: 200 links under 2 s).",
    ]
    return "\n".join(lines) + "\n"
