"""Per-reader variants: a 100,000-reader `newsletter send` where readers are spread over 6
distinct section sets, against the single-variant send of the same database, in the same run.

Both go through the real CLI in a subprocess to the Resend-shaped batch API stub (as
bench_send's API figure), on fresh copies of one prepared database; they alternate (single,
six, six, single) so the machine's load falls on both alike, and the ratio of the means is the
figure. `BENCH_SEND_N` sets the reader count (default 100,000).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import sys
import tempfile
from pathlib import Path

from benchmarks.bench_send import CONNECTIONS, N, _note, _prepare, _send, _spawn

title = "Sending per-reader variants (6 section sets)"

#: the sample week's sections are AI, Energy and Markets: six of the seven non-empty sets
TURNED_OFF: list[list[str]] = [
    [],
    ["Markets"],
    ["AI"],
    ["Energy"],
    ["Energy", "Markets"],
    ["AI", "Markets"],
]


def _spread(ready: Path, folder: Path) -> Path:
    """A copy of the prepared database whose readers turned sections off, i % 6."""
    db = folder / "six.ready.db"
    shutil.copy(ready, db)
    conn = sqlite3.connect(db)
    with conn:
        for n, off in enumerate(TURNED_OFF):
            conn.execute(
                "UPDATE subscribers SET sections_off = ? WHERE id % 6 = ?", [json.dumps(off), n]
            )
    conn.close()
    return db


def _variants(folder: Path, name: str) -> tuple[int, dict[str, int]]:
    """The variants the send froze, and the deliveries sent per variant."""
    conn = sqlite3.connect(folder / f"{name}.db")
    try:
        frozen = conn.execute("SELECT count(*) FROM dispatch_variants").fetchone()[0]
        per = dict(
            conn.execute(
                "SELECT v.key, count(*) FROM deliveries d JOIN dispatch_variants v"
                " ON v.id = d.variant_id WHERE d.status = 'sent' GROUP BY v.key"
            ).fetchall()
        )
    finally:
        conn.close()
    return frozen, per


def run() -> str:
    folder = Path(tempfile.mkdtemp(prefix="bench-variants-"))
    stub, port = _spawn("stub")
    api = {
        "NEWSLETTER_SENDER": "resend",
        "RESEND_API_KEY": "bench-key",
        "NEWSLETTER_RESEND_API_URL": f"http://127.0.0.1:{port}",
    }
    load_before = os.getloadavg()
    try:
        ready = _prepare(folder)
        six = _spread(ready, folder)
        runs: dict[str, list[tuple[float, int, float]]] = {"single": [], "six": []}
        for n, kind in enumerate(("single", "six", "six", "single")):
            source = ready if kind == "single" else six
            measured = _send(source, folder, f"{kind}{n}", api)
            runs[kind].append(measured)
            _note(
                f"{kind}: {measured[0]:.0f} msg/s, {measured[1]:,} sent, peak {measured[2]:.0f} MB"
            )
        frozen, per_variant = _variants(folder, "six1")
        single_frozen, _ = _variants(folder, "single0")
    finally:
        stub.terminate()
        stub.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)
    load_after = os.getloadavg()

    def mean(kind: str, index: int) -> float:
        return sum(r[index] for r in runs[kind]) / len(runs[kind])

    single, six_rate = mean("single", 0), mean("six", 0)
    ratio = six_rate / single
    peak = max(r[2] for rs in runs.values() for r in rs)
    sent = runs["six"][0][1]
    ok_ratio, ok_peak = ratio >= 0.9, peak < 300
    counts = "; ".join(f"{', '.join(json.loads(k))}: {v:,}" for k, v in sorted(per_variant.items()))
    rows = "\n".join(
        f"| {label} | {' / '.join(f'{r[0]:.0f}' for r in runs[kind])} | {mean(kind, 0):.0f}"
        f" | {max(r[2] for r in runs[kind]):.0f} MB |"
        for label, kind in (
            (f"one variant (every reader all sections; {single_frozen} frozen)", "single"),
            (f"6 variants ({frozen} frozen, one MJML compile each)", "six"),
        )
    )
    return f"""## {title}

`newsletter send` (the real CLI, a subprocess) of the sample week to {N:,} readers through the
Resend-shaped batch API stub (100 a call, {CONNECTIONS} connections), on fresh copies of one
database: once with every reader taking every section, once with the readers spread over 6
distinct section sets (i mod 6). Run back to back, alternating single, six, six, single; the
figure is the ratio of the means. Each rate is the CLI's own (sent / elapsed, the variants'
rendering included); peak memory is the send process's RSS. Five of the six variants hold
fewer sections than the full dispatch, so their messages are smaller: the 6-variant send has
less to build and post, which is why it can be faster.

| send | msg/s (each run) | mean | peak memory |
|---|---|---|---|
{rows}

- ratio, 6 variants / one: **{ratio:.2f}** (target ≥ 0.90) {"✓" if ok_ratio else "✗ below target"}
- peak memory: **{peak:.0f} MB** (target under 300 MB) {"✓" if ok_peak else "✗ over target"}
- {sent:,} sent in the 6-variant run; per variant: {counts}
- load average (1, 5, 15 min) before: {" / ".join(f"{x:.1f}" for x in load_before)};
  after: {" / ".join(f"{x:.1f}" for x in load_after)} (2 cores, shared with other suites)
"""


if __name__ == "__main__":
    print(run(), file=sys.stdout)
