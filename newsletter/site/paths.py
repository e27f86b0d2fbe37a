"""Where each page of the site lives, relative to the site's root, and links between them.

The same pages are served by the web service (`/signals/...`, the archive under `/archive/`)
and written by the static build (`DIR/signals/...`, the archive at `DIR/` itself). Every link
on a page is relative to that page, so both work wherever they are published.
"""

from __future__ import annotations

from dataclasses import dataclass

from newsletter.slugs import words
from newsletter.weeks import Week

STREAM = "signals/"
ATOM = "signals/feed.xml"
JSON_FEED = "signals/feed.json"
SITEMAP = "sitemap.xml"


@dataclass(frozen=True)
class Layout:
    """The web service's layout (`static=False`) or the static folder's."""

    static: bool

    @property
    def archive(self) -> str:
        return "" if self.static else "archive/"

    @property
    def stylesheet(self) -> str:
        return "site.css" if self.static else "static/site.css"

    def issue(self, week: str) -> str:
        return f"{self.archive}{week}/"


SERVED = Layout(static=False)
STATIC = Layout(static=True)


def signal_path(slug: str) -> str:
    return f"{STREAM}{slug}/"


def category_key(category: str) -> str:
    """A category as it appears in a URL: `AI` -> `ai`, `Grid & Energy` -> `grid-energy`."""
    return words(category)


def stream_path(page: int = 1, *, category: str | None = None, week: Week | None = None) -> str:
    path = STREAM
    if category is not None:
        path += f"category/{category_key(category)}/"
    elif week is not None:
        path += f"week/{week}/"
    return path + (f"page/{page}/" if page > 1 else "")


def relative(page: str, target: str) -> str:
    """The link from the page at `page` (a folder path like "signals/x/", or a file) to
    `target` (a folder path ending in "/", "" for the root, or a file)."""
    here = page.split("/")[:-1]  # the page's folder, as segments
    there = target.split("/")
    shared = 0
    for mine, theirs in zip(here, there[:-1], strict=False):
        if mine != theirs:
            break
        shared += 1
    link = "../" * (len(here) - shared) + "/".join(there[shared:])
    return link or "./"
