"""The static site `newsletter archive build` writes: the archive of dispatches (index, a page
per issue, RSS) and the signal stream under `signals/` (a page per public signal, the stream by
page, category and week, Atom and JSON feeds), the stylesheet and `sitemap.xml`.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from newsletter.dispatch.archive import archived_issues, issue_pages, write_folder
from newsletter.dispatch.render import make_environment
from newsletter.errors import NewsletterError
from newsletter.models import Signal
from newsletter.settings import Settings
from newsletter.site.pages import Filter, Page, Site
from newsletter.site.paths import STATIC, category_key
from newsletter.store import Store
from newsletter.weeks import Week

log = logging.getLogger(__name__)

STYLESHEET = "site.css"
#: from this many signal pages on, the build renders them in a process per core
PARALLEL_FROM = 1000
CHUNK = 250


@dataclass(frozen=True)
class BuildReport:
    folder: Path
    issues: int
    signals: int
    files: int


def stylesheet(settings: Settings) -> bytes:
    """The web pages' one stylesheet (the web service serves the same at /static/site.css)."""
    env = make_environment()
    return env.get_template("web/site.css").render(settings=settings).encode("utf-8")


def _views(site: Site, signals: list[Signal]) -> list[tuple[Filter, list[Signal]]]:
    """Every view of the stream with its signals, newest first: all, each category, each week."""
    by_category: dict[str, list[Signal]] = defaultdict(list)
    by_week: dict[Week, list[Signal]] = defaultdict(list)
    names = {category_key(name): name for name, _, _ in reversed(site.categories())}
    tz = site.settings.timezone
    for signal in signals:
        if (signal.category or "").strip():
            by_category[names.get(category_key(signal.category or ""), "")].append(signal)
        by_week[Week.containing(signal.published, tz)].append(signal)
    views = [(Filter(), signals)]
    views += [(Filter(category=name), found) for name, found in by_category.items() if name]
    views += [(Filter(week=week), found) for week, found in by_week.items()]
    return views


@dataclass(frozen=True)
class StreamTask:
    """One page of one view of the stream, with the signals it shows."""

    number: int
    view: Filter
    found: list[Signal]
    total: int


@dataclass(frozen=True)
class Nav:
    weeks: list[tuple[Week, int]]
    categories: list[tuple[str, str, int]]


Task = Signal | StreamTask
_worker: tuple[Site, Nav] | None = None


def _start_worker(path: Path, settings: Settings, nav: Nav) -> None:
    global _worker  # one renderer per worker process, with its own database connection
    _worker = (Site(Store.open(path, migrate=False), settings, STATIC), nav)


def _render_one(site: Site, nav: Nav, task: Task) -> Page:
    if isinstance(task, Signal):
        return site.render_signal(task)
    return site.render_stream(
        task.number,
        task.view,
        task.found,
        task.total,
        weeks=nav.weeks,
        categories=nav.categories,
    )


def _render(tasks: list[Task]) -> list[Page]:
    assert _worker is not None
    site, nav = _worker
    return [_render_one(site, nav, task) for task in tasks]


def render_all(site: Site, nav: Nav, tasks: list[Task]) -> Iterator[Page]:
    """Every page asked for; a large site is rendered on every core (pages are independent)."""
    cores = os.cpu_count() or 1
    path = site.store.path
    if len(tasks) < PARALLEL_FROM or cores < 2 or path is None:
        yield from (_render_one(site, nav, task) for task in tasks)
        return
    chunks = [tasks[i : i + CHUNK] for i in range(0, len(tasks), CHUNK)]
    context = multiprocessing.get_context("fork")
    with context.Pool(cores, _start_worker, (path, site.settings, nav)) as pool:
        for rendered in pool.imap(_render, chunks):
            yield from rendered


def stream_pages(site: Site, signals: list[Signal]) -> list[Page]:
    """Every page of the signal stream, from one read of the public signals (newest first)."""
    size = site.settings.stream_page_size
    nav = Nav(site.weeks(), site.categories())
    tasks: list[Task] = list(signals)
    for view, found in _views(site, signals):
        for start in range(0, max(1, len(found)), size):
            tasks.append(
                StreamTask(start // size + 1, view, found[start : start + size], len(found))
            )
    pages = list(render_all(site, nav, tasks))
    pages += [site.moved_page(old, new) for old, new in site.store.stream.old_slugs()]
    pages += [site.atom(), site.json_feed()]
    return pages


def site_files(store: Store, settings: Settings) -> tuple[list[tuple[str, bytes]], int, int]:
    """(path, bytes) of every file of the static site, and how many issues and signals."""
    site = Site(store, settings, STATIC)
    issues = archived_issues(store, settings)
    signals = store.stream.all()
    files = [(page.path, page.body) for page in issue_pages(issues, settings)]
    files.append((STYLESHEET, stylesheet(settings)))
    pages = [site.archive_index(issues), *stream_pages(site, signals)]
    pages.append(site.sitemap([issue.dispatch.week for issue in issues]))
    files += [(page.file, page.body) for page in pages]
    return files, len(issues), len(signals)


def build_site(store: Store, settings: Settings, output: Path | None = None) -> BuildReport:
    """Write the static site to `output` (default: the folder `serve` publishes at /archive/)."""
    target = Path(output or settings.web_archive_dir)
    files, issues, signals = site_files(store, settings)
    folder = write_folder(target, files)
    return BuildReport(folder, issues, signals, len(files))


def publish_after_send(store: Store, settings: Settings, week: Week) -> Path | None:
    """Rebuild the static site once the week's dispatch is sent, so "View in browser" works and
    its signals' pages exist. The mail has gone out by now: a failure here is logged, never
    turned into a failed send."""
    row = store.dispatches.get(str(week))
    if row is None or row["status"] not in ("partly sent", "sent"):
        return None
    return rebuild(store, settings)


def rebuild(store: Store, settings: Settings) -> Path | None:
    """Rebuild the web service's static folder; a failure is a warning naming the fix."""
    try:
        report = build_site(store, settings)
    except (NewsletterError, OSError) as exc:
        log.warning("web archive not rebuilt: %s (run `newsletter archive build`)", exc)
        return None
    log.info("web archive rebuilt in %s", report.folder)
    return report.folder
