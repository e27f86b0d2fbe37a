"""The web archive of dispatches: a page per sent dispatch and an RSS 2.0 feed of them.

Each issue's page is the HTML frozen when sending began, with the per-reader slots filled for
nobody (a subscribe link where a reader's unsubscribe link was), so the archive shows exactly
what was sent; a bar at the top leads back to the index, and what only makes sense in an inbox
("View in browser") is hidden. The whole static site (these pages, the index, the signal
stream) is written by `newsletter.site.build.build_site` through `write_folder` here.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any

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

ARCHIVED = FROZEN  # readers have "view in browser" links from sending on
FEED = "feed.xml"
INDEX = "index.html"


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

    @property
    def week(self) -> Week:
        return Week.parse(self.dispatch.week)

    @property
    def week_label(self) -> str:
        """`Week of Jun 8, 2026`: the week the dispatch covers (not the day it was sent)."""
        monday = self.week.monday()
        return f"Week of {monday:%b} {monday.day}, {monday.year}"


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
        links = {row["key"]: row for row in store.clicks.links(dispatch.id)}
        page = with_archive_bar(untracked(rendered.html.fill(values), links), settings)
        issues.append(Issue(dispatch, when.astimezone(UTC), page))
    issues.sort(key=lambda issue: (issue.dispatch.issue_number, issue.dispatch.week), reverse=True)
    return issues


#: a link the email counts (engagement): `.../r/<key>`, in per-reader mode `.<reader>` after it
_TRACKED = re.compile(r'href="[^"]*/r/([A-Za-z0-9_-]{12})(?:\.[A-Za-z0-9_-]{16})?"')
_PIXEL = re.compile(r'<img\b[^>]*\bsrc="[^"]*/r/([A-Za-z0-9_-]{12})"[^>]*>')


def untracked(page: str, links: dict[str, dict[str, Any]]) -> str:
    """The archive copy with the email's counted links back to where they lead and no open
    pixel: a visit to the web copy is nobody's click (`links`: the dispatch's stored links)."""

    def link(match: re.Match[str]) -> str:
        row = links.get(match[1])
        return f'href="{html.escape(row["url"])}"' if row else match[0]

    def pixel(match: re.Match[str]) -> str:
        row = links.get(match[1])
        return "" if row and row["kind"] == "open" else match[0]

    return _TRACKED.sub(link, _PIXEL.sub(pixel, page))


_BODY = re.compile(r"<body\b[^>]*>", re.IGNORECASE)
_ARCHIVE_STYLE = """<style>
.inbox-only { display: none !important; }
.archive-bar { max-width: 600px; margin: 0 auto; padding: 14px 16px 6px; font: 15px/1.5
  -apple-system, BlinkMacSystemFont, "Segoe UI", Helvetica, Arial, sans-serif; color: #4a5568; }
.archive-bar a { color: %(accent)s; display: inline-block; padding: 8px 4px; }
@media (prefers-color-scheme: dark) { .archive-bar, .archive-bar span { color: #a9b4c2; }
  .archive-bar a { color: #8ab4f8; } }
</style>"""


def with_archive_bar(page: str, settings: Settings) -> str:
    """The frozen email as a web page: a way back to the index and the signal stream at the
    top, and the inbox-only parts ("View in browser") hidden. Links are relative to the issue's
    folder, so the archive works wherever it is published."""
    accent = html.escape(settings.accent_color)
    style = _ARCHIVE_STYLE % {"accent": accent}
    bar = (
        '<nav class="archive-bar" aria-label="Archive">'
        f'<a href="../">← All issues</a> <span aria-hidden="true">·</span> '
        '<a href="../signals/">Signal stream</a> <span aria-hidden="true">·</span> '
        f'<a href="{html.escape(settings.public_url)}/">Subscribe</a></nav>'
    )
    head_end = page.lower().find("</head>")
    if head_end >= 0:
        page = page[:head_end] + style + page[head_end:]
    body = _BODY.search(page)
    at = body.end() if body else 0
    return page[:at] + bar + page[at:]


def feed(issues: list[Issue], settings: Settings, env: jinja2.Environment | None = None) -> str:
    """RSS 2.0 of the issues. Readers render <title> and <description> as HTML, so their text
    is HTML-escaped here and XML-escaped again by the template."""
    env = env or make_environment()
    items = []
    for issue in issues:
        titles = "".join(
            f"<li>{html.escape(signal.title, quote=False)}</li>"
            for signal in issue.dispatch.signals
        )
        lead = html.escape(issue.dispatch.preheader, quote=False)
        description = (f"<p>{lead}</p>" if lead else "") + (f"<ul>{titles}</ul>" if titles else "")
        title = f"Issue {issue.dispatch.issue_number}: {issue.dispatch.subject}"
        items.append(
            {"issue": issue, "title": html.escape(title, quote=False), "description": description}
        )
    return env.get_template("archive/feed.xml.j2").render(
        settings=settings,
        channel_title=html.escape(settings.name, quote=False),
        channel_description=html.escape(settings.tagline or settings.name, quote=False),
        items=items,
        archive_url=archive_url(settings),
        feed=FEED,
        rfc822=format_datetime,
        built_at=datetime.now(UTC),
    )


def issue_pages(issues: list[Issue], settings: Settings) -> list[ArchivePage]:
    """Each issue's page and the RSS feed (the index is the site's: it shares its layout)."""
    pages = [
        ArchivePage(f"{issue.path}{INDEX}", "text/html; charset=utf-8", issue.html.encode("utf-8"))
        for issue in issues
    ]
    body = feed(issues, settings).encode("utf-8")
    pages.append(ArchivePage(FEED, "application/rss+xml; charset=utf-8", body))
    return pages


_ISSUE_PATH = re.compile(r"^(\d{4}-W\d{2})/(index\.html)?$")


def archive_page(store: Store, settings: Settings, path: str) -> ArchivePage | None:
    """An issue's page ("2026-W24/") or the feed ("feed.xml") in memory, or None: no such
    page. Only these names are recognised, so a path can never reach the file system. (The
    index shares the site's layout: `newsletter.site.pages.Site.archive_index`.)"""
    path = path.lstrip("/")
    match = _ISSUE_PATH.match(path)
    wanted = f"{match[1]}/{INDEX}" if match else path
    if not match and wanted != FEED:
        return None
    pages = issue_pages(archived_issues(store, settings), settings)
    return next((page for page in pages if page.path == wanted), None)


def is_archive_folder(folder: Path) -> bool:
    """Only an earlier archive (or an empty folder) is ever replaced wholesale."""
    if not folder.is_dir():
        return False
    return not any(folder.iterdir()) or ((folder / INDEX).is_file() and (folder / FEED).is_file())


def write_folder(target: Path, files: Iterable[tuple[str, bytes]]) -> Path:
    """Write `files` (relative path, bytes) as the folder `target`, replacing an earlier
    archive there. The new folder is written beside the old one and swapped in, so a visitor
    never sees half of it; a folder that is not an archive is never touched."""
    target = target.resolve()
    if target.exists() and not is_archive_folder(target):
        raise NewsletterError(
            f"{target}: exists and is not a web archive (no {INDEX} and {FEED}); "
            "choose an empty or new folder"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        made: set[Path] = {staging}
        for relative, body in files:
            file = staging / relative
            if file.parent not in made:
                file.parent.mkdir(parents=True, exist_ok=True)
                made.add(file.parent)
            file.write_bytes(body)
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
    return target
