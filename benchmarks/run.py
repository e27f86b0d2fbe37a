"""`make bench`: run every benchmarks/bench_*.py and write BENCHMARKS.md.

Each module has `title: str` and `run() -> str`, returning a Markdown section (figures measured
in this run, targets beside them). `python -m benchmarks.run collect render` runs just those.
"""

from __future__ import annotations

import importlib
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).parent
OUTPUT = HERE.parent / "BENCHMARKS.md"


def main(names: list[str]) -> None:
    modules = sorted(p.stem for p in HERE.glob("bench_*.py"))
    chosen = [m for m in modules if not names or m.removeprefix("bench_") in names]
    sections = []
    for name in chosen:
        module = importlib.import_module(f"benchmarks.{name}")
        print(f"== {module.title}", flush=True)
        started = time.perf_counter()
        section = module.run()
        print(section, flush=True)
        print(f"({time.perf_counter() - started:.1f} s)", flush=True)
        sections.append(section.strip())
    if names:
        return  # a partial run never overwrites the full report
    header = (
        "# Benchmarks\n\n"
        f"Written by `make bench` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
        f"Python {platform.python_version()}, {platform.machine()}, "
        f"{_cpus()} cores. Figures drift about ±25 % between runs on this machine; "
        "compare the ratios measured within one run.\n"
    )
    OUTPUT.write_text(header + "\n" + "\n\n".join(sections) + "\n", encoding="utf-8")
    print(f"wrote {OUTPUT}")


def _cpus() -> int:
    import os

    return os.cpu_count() or 1


if __name__ == "__main__":
    main(sys.argv[1:])
