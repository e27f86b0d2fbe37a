"""The web archive: an index of sent dispatches, one page per dispatch, and an RSS 2.0 feed.

Each issue's page is the HTML frozen when sending began, with the per-reader slots filled for
nobody (a subscribe link where a reader's unsubscribe link was), so the archive shows exactly
what was sent. `build_archive` writes the static site (what `GET /archive/` serves);
`archive_page` answers one path of it without touching the disk.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

import jinja2
from markupsafe import escape

from newsletter.dispatch.build import load_dispatch
from newsletter.dispatch.render import archive_values, frozen_rendering, make_environment
from newsletter.errors import NewsletterError
from newsletter.models import Dispatch
from newsletter.settings import Settings
from newsletter.store import Store
from newsletter.store.dispatches import FROZEN
from newsletter.weeks import Week

log = logging.getLogger(__name__)

ARCHIVED = FROZEN  # readers get "view in browser" links as soon as sending starts
FEED = "feed.xml"
_ISSUE_PATH = re.compile(r"^(\d{4}-W\d{2})/(index\.html)?$")


@dataclass(frozen=True)
class ArchivePage:
    path: str  # relative to the archive's root, e.g. "2026-W24/index.html"
    content_type: str
    body: bytes


@dataclass(frozen=True)
class Issue:
    dispatch: Dispatch
    sent_at: datetime
    html: str

    @property
    def path(self) -> str:
        return f"{self.dispatch.week}/"


def archive_url(settings: Settings) -> str:
    return f"{settings.public_url}/archive/"


def archived_issues(store: Store, settings: Settings) -> list[Issue]:
    """Every dispatch that has gone out, newest first, with its archive copy's HTML."""
    issues = []
    values = {k: str(escape(v)) for k, v in archive_values(settings).items()}
    for row in store.dispatches.list():
        if row["status"] not in ARCHIVED or row["html"] is None:
            continue
        dispatch = load_dispatch(store, settings, Week.parse(row["week"]))
        rendered = frozen_rendering(dispatch) if dispatch else None
        if dispatch is None or rendered is None:
            continue
        when = datetime.fromisoformat(row["sent_at"] or row["updated_at"])
        issues.append(Issue(dispatch, when.astimezone(UTC), rendered.html.fill(values)))
    issues.sort(key=lambda issue: (issue.dispatch.issue_number, issue.dispatch.week), reverse=True)
    return issues


def _pages(issues: list[Issue], settings: Settings, env: jinja2.Environment) -> list[ArchivePage]:
    context = {
        "issues": issues,
        "settings": settings,
        "archive_url": archive_url(settings),
        "subscribe_url": f"{settings.public_url}/",
        "feed": FEED,
        "rfc822": format_datetime,
        "built_at": datetime.now(UTC),
    }
    index = env.get_template("archive/index.html.j2").render(context)
    feed = env.get_template("archive/feed.xml.j2").render(context)
    pages = [
        ArchivePage("index.html", "text/html; charset=utf-8", index.encode("utf-8")),
        ArchivePage(FEED, "application/rss+xml; charset=utf-8", feed.encode("utf-8")),
    ]
    pages += [
        ArchivePage(
            f"{issue.path}index.html", "text/html; charset=utf-8", issue.html.encode("utf-8")
        )
        for issue in issues
    ]
    return pages


def archive_pages(
    store: Store, settings: Settings, env: jinja2.Environment | None = None
) -> list[ArchivePage]:
    """Every page of the archive, in memory."""
    return _pages(archived_issues(store, settings), settings, env or make_environment())


def archive_page(store: Store, settings: Settings, path: str) -> ArchivePage | None:
    """The page at `path` under /archive/ ("", "feed.xml", "2026-W24/"), or None: no such page.

    Only these names are recognised, so a path can never reach the file system.
    """
    path = path.lstrip("/")
    wanted = "index.html" if path in ("", "index.html") else path
    match = _ISSUE_PATH.match(path)
    if match:
        wanted = f"{match[1]}/index.html"
    elif wanted not in ("index.html", FEED):
        return None
    return next((p for p in archive_pages(store, settings) if p.path == wanted), None)


def _replaceable(folder: Path) -> bool:
    """Only an earlier archive (or an empty folder) is ever replaced wholesale."""
    if not folder.is_dir():
        return False
    return not any(folder.iterdir()) or (
        (folder / "index.html").is_file() and (folder / FEED).is_file()
    )


def build_archive(store: Store, settings: Settings, output: Path | None = None) -> tuple[Path, int]:
    """Write the static archive to `output` (default: the web service's archive folder).

    The new site is written next to the old one and swapped in, so a visitor never sees half of
    it. Returns the folder and how many issues it holds.
    """
    target = Path(output or settings.web_archive_dir).resolve()
    if target.exists() and not _replaceable(target):
        raise NewsletterError(
            f"{target}: exists and is not a web archive (no index.html and {FEED}); "
            "choose an empty or new folder"
        )
    issues = archived_issues(store, settings)
    pages = _pages(issues, settings, make_environment())
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        for page in pages:
            file = staging / page.path
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_bytes(page.body)
        os.chmod(staging, 0o755)  # noqa: S103 - a web folder: the server must read it
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
            os.replace(staging, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target, len(issues)


def publish_after_send(store: Store, settings: Settings, week: Week) -> Path | None:
    """Rebuild the web archive once the week's dispatch is sent, so "View in browser" works.

    The mail has gone out by now: a failure here is logged, never turned into a failed send.
    """
    row = store.dispatches.get(str(week))
    if row is None or row["status"] not in ("partly sent", "sent"):
        return None
    try:
        folder, _ = build_archive(store, settings)
    except (NewsletterError, OSError) as exc:
        log.warning("web archive not rebuilt: %s (run `newsletter archive build`)", exc)
        return None
    log.info("web archive rebuilt in %s", folder)
    return folder
