"""Re-polling 118 real feeds that have not changed: `newsletter collect` beside rss2email 3.14.

The recipe of shared/PERF-NOTES.md: 117 real feeds (arXiv, encodings, real-world, feedparser's
ill-formed ones from tests/fixtures/feeds; rss2email's and podcastparser's test feeds from
benchmarks/corpus) and one generated 500-item arXiv feed, copied into a folder that
`http.server` serves on 127.0.0.1 (it answers If-Modified-Since with 304). Each tool fetches
everything once, then re-polls: a fresh process each time, the two alternating, medians.
Nothing reaches the internet. rss2email runs from its own venv (`make bench` makes it in
.bench/rss2email, or set BENCH_RSS2EMAIL to an `r2e`); without it this section says so and
measures only ours.
"""

from __future__ import annotations

import configparser
import functools
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from xml.sax.saxutils import quoteattr

from benchmarks.bench_collect import arxiv_feed

title = "Re-polling 118 unchanged feeds, beside rss2email"

ROOT = Path(__file__).parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "feeds"
CORPUS = Path(__file__).parent / "corpus"
R2E = Path(os.environ.get("BENCH_RSS2EMAIL", ROOT / ".bench" / "rss2email" / "bin" / "r2e"))
ROUNDS = int(os.environ.get("BENCH_REPOLL_ROUNDS", "7"))
FEEDS = 118


def corpus() -> list[Path]:
    """The 117 real feeds of the recipe, in a fixed order."""
    files = [
        *sorted((FIXTURES / "arxiv").glob("*.xml")),
        *sorted((FIXTURES / "encoding").glob("*.xml")),
        *sorted((FIXTURES / "realworld").glob("*")),
        *sorted((CORPUS / "rss2email").glob("*-feed*")),
        *sorted((CORPUS / "podcastparser").glob("*.rss")),
        *sorted((FIXTURES / "feedparser" / "illformed").rglob("*.xml")),
    ]
    if len(files) != FEEDS - 1:
        raise RuntimeError(f"expected {FEEDS - 1} corpus feeds, found {len(files)}")
    return files


@dataclass
class Run:
    seconds: float
    max_rss_mb: float
    code: int
    output: str


def _run(argv: list[str], cwd: Path, env: dict[str, str]) -> Run:
    """One process, with its own wall time and peak memory (wait4's rusage of that child)."""
    started = time.perf_counter()
    process = subprocess.Popen(
        argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    assert process.stdout is not None
    output = process.stdout.read().decode(errors="replace")
    _, status, usage = os.wait4(process.pid, 0)
    took = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    return Run(took, usage.ru_maxrss / 1024, process.returncode, output)


@contextmanager
def serve(folder: Path) -> Iterator[str]:
    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=folder))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def _publish(folder: Path) -> list[str]:
    """Copy the feeds into the served folder (dates in the past, so 304s are possible)."""
    folder.mkdir()
    names = []
    for n, path in enumerate(corpus()):
        name = f"{n:03d}-{path.name}"
        shutil.copyfile(path, folder / name)
        names.append(name)
    (folder / "117-arxiv-500.xml").write_bytes(arxiv_feed())
    names.append("117-arxiv-500.xml")
    past = time.time() - 3600
    for name in names:
        os.utime(folder / name, (past, past))
    return names


class Newsletter:
    name = "newsletter"

    def __init__(self, home: Path, base: str, names: list[str]) -> None:
        self.home = home
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
        self.env["NEWSLETTER_DB"] = str(home / "newsletter.db")
        self.script = str(Path(sys.executable).parent / "newsletter")
        sources = home / "sources.toml"
        sources.write_text(
            "".join(
                f'[[source]]\nname = "feed-{n:03d}"\nurl = "{base}/{name}"\n\n'
                for n, name in enumerate(names)
            )
        )
        self._must(_run([self.script, "sources", "load", str(sources)], home, self.env))

    @staticmethod
    def _must(run: Run, codes: tuple[int, ...] = (0,)) -> Run:
        if run.code not in codes:
            raise RuntimeError(f"exit {run.code}: {run.output[-2000:]}")
        return run

    def poll(self) -> Run:
        # exit 3: some of the ill-formed feeds hold nothing usable and are reported failed
        return self._must(_run([self.script, "-q", "collect"], self.home, self.env), (0, 3))


class Rss2email:
    name = "rss2email 3.14"

    def __init__(self, home: Path, base: str, names: list[str]) -> None:
        self.home = home
        self.env = dict(os.environ)
        self.argv = [str(R2E), "-c", str(home / "r2e.cfg"), "-d", str(home / "r2e.json")]
        Newsletter._must(_run([*self.argv, "new", "bench@example.org"], home, self.env))
        config = configparser.ConfigParser(interpolation=None)
        config.read(home / "r2e.cfg")
        config["DEFAULT"]["email-protocol"] = "sendmail"
        config["DEFAULT"]["sendmail"] = shutil.which("true") or "/bin/true"  # nothing is mailed
        with open(home / "r2e.cfg", "w") as handle:
            config.write(handle)
        outlines = "".join(
            f"<outline type='rss' text='feed-{n:03d}' xmlUrl={quoteattr(f'{base}/{name}')}/>"
            for n, name in enumerate(names)
        )
        opml = home / "feeds.opml"
        opml.write_text(f"<?xml version='1.0'?><opml version='1.0'><body>{outlines}</body></opml>")
        Newsletter._must(_run([*self.argv, "opmlimport", str(opml)], home, self.env))
        self.first = True

    def poll(self) -> Run:
        # the first run only marks every entry as seen; later ones find nothing new to send
        extra = ["--no-send"] if self.first else []
        self.first = False
        return Newsletter._must(_run([*self.argv, "run", *extra], self.home, self.env), (0, 1))


def measure() -> tuple[dict[str, Run], dict[str, list[Run]], str]:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        names = _publish(home / "feeds")
        with serve(home / "feeds") as base:
            (home / "ours").mkdir()
            tools: list[Newsletter | Rss2email] = [Newsletter(home / "ours", base, names)]
            note = ""
            if R2E.exists():
                (home / "r2e").mkdir()
                tools.append(Rss2email(home / "r2e", base, names))
            else:
                note = (
                    f"rss2email is not installed ({R2E} missing; `make bench` installs"
                    " rss2email==3.14 there): only newsletter was measured."
                )
            first = {tool.name: tool.poll() for tool in tools}
            again: dict[str, list[Run]] = {tool.name: [] for tool in tools}
            for _ in range(ROUNDS):
                for tool in tools:
                    again[tool.name].append(tool.poll())
    return first, again, note


def _repolled(run: Run) -> str:
    """Our collect's last line: how many sources, how many failed (no -q summary: count ✗)."""
    return run.output.strip().splitlines()[-1] if run.output.strip() else ""


def run() -> str:
    first, again, note = measure()
    medians = {name: statistics.median(r.seconds for r in runs) for name, runs in again.items()}
    lines = [
        f"## {title}",
        "",
        f"{FEEDS} feeds (the shared/PERF-NOTES.md recipe) served by `http.server` on 127.0.0.1;"
        f" after one full fetch, {ROUNDS} re-polls each, a fresh process every time, the tools"
        " alternating; medians. Every feed is unchanged, so the server answers 304 Not Modified"
        " to both.",
        "",
        "| | first fetch (whole process) | unchanged re-poll (median) | best | peak RSS |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, runs in again.items():
        lines.append(
            f"| {name} | {first[name].seconds:.2f} s | **{medians[name]:.3f} s**"
            f" | {min(r.seconds for r in runs):.3f} s"
            f" | {statistics.median(r.max_rss_mb for r in runs):.0f} MB |"
        )
    lines.append("")
    ours = medians["newsletter"]
    theirs = medians.get("rss2email 3.14")
    if theirs is None:
        lines.append(note)
    else:
        verdict = "met" if ours < theirs else "MISSED"
        lines.append(
            f"Target: newsletter's re-poll faster than rss2email's in the same run:"
            f" {ours:.3f} s against {theirs:.3f} s ({theirs / ours:.1f}x), {verdict}."
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(run())
