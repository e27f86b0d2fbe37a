"""The signal stream: 10,000 public signals, the static build, and `GET /signals/<slug>/` and
`GET /signals/` under wrk against `newsletter serve --workers 2`, alone and while the sign-up
form takes its target rate (300/s, paced, as in the sign-up benchmark).
"""

from __future__ import annotations

import http.client
import os
import re
import resource
import signal
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from benchmarks.bench_signup import TARGET_P99_MS as SIGNUP_P99_MS
from benchmarks.bench_signup import TARGET_RPS as SIGNUP_RPS
from benchmarks.bench_signup import (
    WRK_DONE,
    Paced,
    _paced,
    _wait_for,
    paced_load,
    start_server,
    with_wrk,
    wrk_result,
)

title = "Signal stream"

SIGNALS = int(os.environ.get("BENCH_STREAM_SIGNALS", "10000"))
DURATION_S = 10
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "16"))
THREADS = 2
HOT_PAGES = 1000  # signal pages the load rotates over
TARGET_PAGES_S = 1000
TARGET_P99_MS = 50
TARGET_BUILD_S = 10.0

LUA = """
local n = 0
function request()
  n = n + 1
  return wrk.format("GET", PATHS[(n % #PATHS) + 1])
end
"""


def _fill(db: Path, count: int) -> list[str]:
    """`count` annotated, published signals with every field of the seed pages."""
    from newsletter.store import Store

    store = Store.open(db)
    start = datetime(2026, 1, 5, tzinfo=UTC)
    with store.transaction():
        ids = [
            store.signals.create(
                {
                    "title": f"Signal {i}: post-training is massive supervised learning",
                    "url": f"https://arxiv.org/abs/2606.{i:05d}",
                    "source_label": "arXiv cs.LG",
                    "published": start + timedelta(hours=i),
                    "summary_html": f"<p>The abstract of paper {i}. " + "Words. " * 60 + "</p>",
                    "summary_text": f"The abstract of paper {i}. " + "Words. " * 60,
                    "category": ("AI", "Markets", "Policy", "Energy", "Science")[i % 5],
                    "signal_score": 50 + i % 50,
                    "horizon": "medium term",
                    "why_now": "This paper re-evaluates the current state of development. " * 2,
                    "why_important": "A strategic reader should care because it moves money.",
                    "what_changes": "Budgets move to supervised data. " * 3,
                    "winners": ["GPU manufacturers", "Companies with large supervised datasets"],
                    "losers": ["Companies lacking extensive labelled data resources"],
                    "effects_direct": "Direct effect. " * 4,
                    "effects_second": "Second-order effect. " * 4,
                    "effects_third": "Third-order effect. " * 4,
                    "editorial_confidence": 90,
                    "structural_impact": 60,
                }
            )
            for i in range(count)
        ]
        store.stream.set_publication(ids, "published")
    slugs = [s.slug or "" for s in store.stream.page(limit=HOT_PAGES)]
    store.close()
    return slugs


def _wrk(url: str, paths: list[str], script: Path) -> tuple[float, float, float, int, int]:
    """(pages/s, p50 ms, p99 ms, requests, non-2xx or socket errors) of one wrk run."""
    table = ", ".join(f'"{p}"' for p in paths)
    script.write_text(f"PATHS = {{{table}}}\n" + LUA + WRK_DONE, encoding="utf-8")
    run = subprocess.run(
        ["wrk", f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{DURATION_S}s", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    )
    requests, seconds, bad, errors, p50, p99 = wrk_result(run.stdout + run.stderr)
    return requests / seconds, p50, p99, requests, bad + errors


PAGE_THREADS = 16
#: pages offered beside the sign-ups' target: both targets at once (1,000 + 300) need more than
#: the 2 cores hold with the load generator on them, so the mix is the page target halved
MIXED_PAGES_S = TARGET_PAGES_S // 2


def _cpu() -> float:
    """CPU seconds used by this process and its finished children (the build's workers)."""
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _paced_pages(port: int, paths: list[str], rate: int) -> Paced:
    """Page views offered at `rate` a second, open loop, over `paths` in turn."""

    def view(conn: http.client.HTTPConnection, thread: int, i: int) -> None:
        conn.request("GET", paths[(i * PAGE_THREADS + thread) % len(paths)])

    return paced_load(port, rate, PAGE_THREADS, view)


def run() -> str:
    return with_wrk(title, _measure)


def _measure(tmp: Path) -> str:
    env = {
        **os.environ,
        "NEWSLETTER_DB": str(tmp / "bench.db"),
        "NEWSLETTER_OUTBOX": str(tmp / "outbox"),
        "NEWSLETTER_WEB_ARCHIVE_DIR": str(tmp / "archive"),
        "NEWSLETTER_SECRET_KEY": "benchmark-secret-key-0123456789",
        "NEWSLETTER_SIGNUP_IP_LIMIT": "0",
        "NEWSLETTER_LOG_LEVEL": "warning",
    }
    started = time.perf_counter()
    slugs = _fill(tmp / "bench.db", SIGNALS)
    filled_s = time.perf_counter() - started

    from newsletter.settings import load_settings
    from newsletter.site.build import build_site
    from newsletter.store import Store

    settings = load_settings(env, env_file=None)
    store = Store.open(settings.db)
    cpu_before = _cpu()
    started = time.perf_counter()
    report = build_site(store, settings, tmp / "site")
    build_s = time.perf_counter() - started
    build_cpu = _cpu() - cpu_before
    store.close()
    size_mb = sum(p.stat().st_size for p in (tmp / "site").rglob("*") if p.is_file()) / 1e6

    server, port = start_server(env, tmp)
    try:
        url = f"http://127.0.0.1:{port}"
        form = _wait_for(url)
        pages = [f"/signals/{slug}/" for slug in slugs]
        for path in (pages[0], "/signals/"):  # answers as expected before any load
            answer = httpx.get(url + path)
            assert answer.status_code == 200 and "Weekly Dispatch" in answer.text, path
        time.sleep(2.5)  # the newest change settles: pages may be kept from here on
        signal_pages = _wrk(url, pages, tmp / "pages.lua")
        stream_pages = _wrk(url, ["/signals/", "/signals/page/2/", "/signals/category/ai/"],
                            tmp / "stream.lua")  # fmt: skip
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert token
        cookie = form.cookies["nl_csrf"]
        alone = _paced(port, token.group(1), cookie)
        mixed: dict[str, Paced] = {}
        load = threading.Thread(
            target=lambda: mixed.update(pages=_paced_pages(port, pages, MIXED_PAGES_S))
        )
        load.start()
        paced = _paced(port, token.group(1), cookie)
        load.join()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(120)
    under = mixed["pages"]

    def verdict(rate: float, p99: float) -> str:
        return "yes" if rate >= TARGET_PAGES_S and p99 < TARGET_P99_MS else "**no**"

    signup_ok = paced.rps >= SIGNUP_RPS * 0.98 and paced.p99_ms < SIGNUP_P99_MS
    return f"""## {title}

{SIGNALS:,} public signals with every field of the seed pages (filled in {filled_s:.1f} s).
`newsletter serve --workers 2 --threads 8` (waitress) on 127.0.0.1 under
`wrk -t{THREADS} -c{CONNECTIONS} -d{DURATION_S}s` on the same 2 cores; signal pages rotate over
the {len(pages):,} newest signals, the stream over its first page, page 2 and a category.

| measure | this run | target |
| --- | --- | --- |
| static build (`archive build`): {report.files:,} files, {size_mb:.0f} MB | {build_s:.1f} s \
({build_cpu:.1f} s of CPU on 2 cores) | < {TARGET_BUILD_S:.0f} s \
{"yes" if build_s < TARGET_BUILD_S else "**no**"} |
| `GET /signals/<slug>/` pages per second | {signal_pages[0]:,.0f} | ≥ {TARGET_PAGES_S:,} |
| p50 / p99 latency | {signal_pages[1]:.1f} / {signal_pages[2]:.1f} ms | p99 < {TARGET_P99_MS} ms \
{verdict(signal_pages[0], signal_pages[2])} |
| requests / non-2xx or errors | {signal_pages[3]:,} / {signal_pages[4]} | all 2xx |
| `GET /signals/` (and page 2, a category) per second | {stream_pages[0]:,.0f} | \
≥ {TARGET_PAGES_S:,} |
| p50 / p99 latency | {stream_pages[1]:.1f} / {stream_pages[2]:.1f} ms | p99 < {TARGET_P99_MS} ms \
{verdict(stream_pages[0], stream_pages[2])} |
| requests / non-2xx or errors | {stream_pages[3]:,} / {stream_pages[4]} | all 2xx |
| **sign-ups at their target and pages at {MIXED_PAGES_S}/s, paced (open loop), together** | | |
| signal pages per second achieved (of {MIXED_PAGES_S:,} offered) | {under.rps:,.0f} | \
≥ {MIXED_PAGES_S:,} |
| page p50 / p99 (from each request's scheduled time) | \
{under.p50_ms:.1f} / {under.p99_ms:.1f} ms | p99 < {TARGET_P99_MS} ms \
{"yes" if under.rps >= MIXED_PAGES_S * 0.98 and under.p99_ms < TARGET_P99_MS else "**no**"} |
| pages / non-2xx or errors | {under.sent:,} / {under.sent - under.ok} | all 2xx |
| sign-ups per second achieved (of {SIGNUP_RPS} offered) | {paced.rps:,.0f} | ≥ {SIGNUP_RPS} |
| sign-up p50 / p99 | {paced.p50_ms:.1f} / {paced.p99_ms:.1f} ms | p99 < {SIGNUP_P99_MS} ms \
{"yes" if signup_ok else "**no**"} |
| sign-ups / non-2xx or errors | {paced.sent:,} / {paced.sent - paced.ok} | all 2xx |
| for comparison: sign-ups alone, same server, just before | \
{alone.rps:,.0f}/s, p99 {alone.p99_ms:.1f} ms | |

The wrk rows are the closed-loop maximum (16 connections always busy, so their latency is
mostly queueing); the paced rows offer the targets and time each request from when it was due.
Pages are rendered from SQLite and Jinja2 on the first request and kept per worker while the
stream's data is unchanged (`newsletter.site.cache`); each answer still gets the visitor's own
CSRF token and cookie. The static build renders on both cores (`newsletter.site.build`).
"""
