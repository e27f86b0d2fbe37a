"""The signal stream's pages: one per public signal, the stream (newest first, paged, by
category or by week), its Atom and JSON feeds and the sitemap.

`Site` renders them for one layout: the web service answers with them one at a time, the
static build writes them all. Only public signals (`store.stream`) are ever rendered.
"""

from __future__ import annotations

import html as html_lib
import json
import math
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jinja2

from newsletter.dispatch.archive import Issue
from newsletter.dispatch.card import Card, make_card
from newsletter.dispatch.render import HEADINGS, make_environment
from newsletter.models import Signal
from newsletter.settings import Settings
from newsletter.site import meta, paths
from newsletter.site.paths import SERVED, Layout, category_key, relative, signal_path, stream_path
from newsletter.site.share import share_links
from newsletter.slugs import looks_like_slug
from newsletter.store import Store
from newsletter.weeks import Week

HTML = "text/html; charset=utf-8"
ATOM_TYPE = "application/atom+xml; charset=utf-8"
JSON_FEED_TYPE = "application/feed+json; charset=utf-8"
XML_TYPE = "application/xml; charset=utf-8"
FEED_ENTRIES = 50
JSON_FEED_VERSION = "https://jsonfeed.org/version/1.1"


@dataclass(frozen=True)
class Page:
    path: str  # the page's place under the site's root, e.g. "signals/x/" or "signals/feed.xml"
    content_type: str
    body: bytes

    @property
    def file(self) -> str:
        """Where the static build writes it."""
        return self.path + "index.html" if self.path.endswith("/") or not self.path else self.path


@dataclass(frozen=True)
class Moved:
    """An old address of a signal (its title changed): answer 301 to `path`."""

    path: str


@dataclass(frozen=True)
class SubscribeBox:
    method: str
    action: str
    csrf_token: str | None


@dataclass(frozen=True)
class Filter:
    """The stream's current view: everything, one category or one week."""

    category: str | None = None
    week: Week | None = None


def html_text(text: str) -> str:
    """Text as HTML (a plain str, so an XML template escapes it once more)."""
    return html_lib.escape(text or "", quote=False)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _updated(signal: Signal) -> str:
    return _iso(datetime.fromisoformat(signal.updated_at)) if signal.updated_at else ""


class Site:
    """Renders the stream for one layout (the web service's or the static folder's)."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        layout: Layout = SERVED,
        env: jinja2.Environment | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.layout = layout
        self.env = env or make_environment()
        self.base = settings.public_url + "/"

    # -- shared pieces --------------------------------------------------------------------

    def url(self, path: str) -> str:
        """The canonical (absolute) address of a page: always the web service's."""
        return self.base + path

    def card(self, signal: Signal) -> Card:
        return make_card(signal, self.settings)

    def box(self, csrf_token: str | None) -> SubscribeBox:
        if not self.layout.static:
            return SubscribeBox("post", "/subscribe", csrf_token)
        if self.settings.cors_origins:  # another site may post: the embedded form
            return SubscribeBox("post", f"{self.settings.public_url}/subscribe", None)
        return SubscribeBox("get", f"{self.settings.public_url}/", None)

    def _render(self, template: str, path: str, **context: Any) -> str:
        def link(target: str) -> str:
            return relative(path, target)

        base: dict[str, Any] = {
            "settings": self.settings,
            "layout": self.layout,
            "paths": paths,
            "link": link,
            "headings": HEADINGS,
            "canonical": None,
            "meta_tags": [],
            "json_ld": None,
            "section": "stream",
            "subscribe_page": f"{self.settings.public_url}/",
        }
        return self.env.get_template(template).render({**base, **context})

    # -- a signal's page ------------------------------------------------------------------

    def signal_page(self, slug: str, *, csrf_token: str | None = None) -> Page | Moved | None:
        """The page of a public signal; `Moved` for an old slug; None for anything else."""
        if not looks_like_slug(slug):
            return None
        signal, old = self.store.stream.by_slug(slug)
        if signal is None or signal.slug is None:
            return None
        if old:
            return Moved(signal_path(signal.slug))
        return self.render_signal(signal, csrf_token=csrf_token)

    def render_signal(self, signal: Signal, *, csrf_token: str | None = None) -> Page:
        assert signal.slug is not None
        path = signal_path(signal.slug)
        card = self.card(signal)
        canonical = self.url(path)
        body = self._render(
            "site/signal.html.j2",
            path,
            card=card,
            canonical=canonical,
            shares=share_links(canonical, card.title),
            meta_tags=meta.tags(card, self.settings, canonical),
            json_ld=meta.article(card, self.settings, canonical, _updated(signal) or None),
            issues=self.store.stream.issues_of(signal.id),
            box=self.box(csrf_token),
        )
        return Page(path, HTML, body.encode("utf-8"))

    def moved_page(self, old_slug: str, current_slug: str) -> Page:
        """The static build's stand-in for a 301 from a signal's old address."""
        path, target = signal_path(old_slug), signal_path(current_slug)
        body = self._render(
            "site/moved.html.j2", path, target=relative(path, target), canonical=self.url(target)
        )
        return Page(path, HTML, body.encode("utf-8"))

    # -- the stream -----------------------------------------------------------------------

    def categories(self) -> list[tuple[str, str, int]]:
        """(name, stream path, count) of each category with public signals."""
        merged: dict[str, tuple[str, int]] = {}
        for name, count in self.store.stream.categories():
            key = category_key(name)
            first, total = merged.get(key, (name, 0))
            merged[key] = (first, total + count)
        return [(name, stream_path(category=name), n) for name, n in merged.values()]

    def weeks(self) -> list[tuple[Week, int]]:
        """Each week (in the publication's timezone) with public signals, newest first."""
        tz = self.settings.timezone
        counted = Counter(Week.containing(d, tz) for d in self.store.stream.published_dates())
        return sorted(counted.items(), reverse=True)

    def find_category(self, key: str) -> str | None:
        """The category a stream path names (`ai` -> `AI`), if it has public signals."""
        named = (name for name, _ in self.store.stream.categories() if category_key(name) == key)
        return next(named, None)

    def stream_page(
        self,
        number: int = 1,
        view: Filter | None = None,
        *,
        csrf_token: str | None = None,
        weeks: list[tuple[Week, int]] | None = None,
        categories: list[tuple[str, str, int]] | None = None,
    ) -> Page | None:
        """A page of the stream; None past the last page (the first page always exists)."""
        view = view or Filter()
        start = end = None
        if view.week is not None:
            start, end = view.week.bounds(self.settings.timezone)
        size = self.settings.stream_page_size
        total = self.store.stream.count(category=view.category, start=start, end=end)
        if number < 1 or number > max(1, math.ceil(total / size)):
            return None
        found = self.store.stream.page(
            limit=size, offset=(number - 1) * size, category=view.category, start=start, end=end
        )
        return self.render_stream(
            number,
            view,
            found,
            total,
            csrf_token=csrf_token,
            weeks=self.weeks() if weeks is None else weeks,
            categories=self.categories() if categories is None else categories,
        )

    def render_stream(
        self,
        number: int,
        view: Filter,
        found: list[Signal],
        total: int,
        *,
        weeks: list[tuple[Week, int]],
        categories: list[tuple[str, str, int]],
        csrf_token: str | None = None,
    ) -> Page:
        """Page `number` of a view, given its signals and how many the view holds."""
        pages = max(1, math.ceil(total / self.settings.stream_page_size))
        path = stream_path(number, category=view.category, week=view.week)

        def neighbour(n: int) -> str | None:
            inside = 1 <= n <= pages
            return stream_path(n, category=view.category, week=view.week) if inside else None

        heading = "Signal stream"
        if view.category is not None:
            heading = f"{view.category} · Signal stream"
        elif view.week is not None:
            monday = view.week.monday()
            heading = f"Week of {monday:%b} {monday.day}, {monday.year} · Signal stream"
        body = self._render(
            "site/stream.html.j2",
            path,
            heading=heading,
            cards=[self.card(s) for s in found],
            canonical=self.url(path),
            category=view.category,
            week=view.week,
            week_label=str(view.week) if view.week else None,
            categories=categories,
            weeks=[(str(w), stream_path(week=w), n) for w, n in weeks],
            page_number=number,
            pages=pages,
            newer=neighbour(number - 1),
            older=neighbour(number + 1),
            box=self.box(csrf_token),
            meta_tags=[
                ("name", "description", f"{self.settings.name}: {self.settings.tagline}"),
                ("property", "og:type", "website"),
                ("property", "og:site_name", self.settings.name),
                ("property", "og:title", f"{heading} · {self.settings.name}"),
                ("property", "og:url", self.url(path)),
            ],
        )
        return Page(path, HTML, body.encode("utf-8"))

    def archive_index(self, issues: list[Issue]) -> Page:
        """The archive's index (written by the static build, served at /archive/)."""
        path = self.layout.archive
        body = self._render(
            "archive/index.html.j2",
            path,
            issues=issues,
            section="archive",
            canonical=f"{self.settings.public_url}/archive/",
            box=self.box(None),
        )
        return Page(path, HTML, body.encode("utf-8"))

    # -- feeds and the sitemap ------------------------------------------------------------

    def _entries(self) -> list[tuple[Signal, Card, str]]:
        latest = self.store.stream.page(limit=FEED_ENTRIES)
        content = self.env.get_template("site/_content.html.j2")
        return [
            (s, c, content.render(card=c, headings=HEADINGS))
            for s in latest
            for c in (self.card(s),)
        ]

    def atom(self) -> Page:
        entries = self._entries()
        updated = max((_updated(s) or _iso(s.published) for s, _, _ in entries), default=None)
        body = self.env.get_template("site/feed.atom.xml.j2").render(
            settings=self.settings,
            html=html_text,
            stream_url=self.url(paths.STREAM),
            feed_url=self.url(paths.ATOM),
            updated=updated or _iso(datetime(2000, 1, 1, tzinfo=UTC)),
            entries=[
                {
                    "card": c,
                    "url": self.url(signal_path(s.slug or "")),
                    "published": _iso(s.published),
                    "updated": _updated(s) or _iso(s.published),
                    "summary": meta.description(c),
                    "content": content,
                }
                for s, c, content in entries
            ],
        )
        return Page(paths.ATOM, ATOM_TYPE, body.encode("utf-8"))

    def json_feed(self) -> Page:
        """JSON Feed 1.1: `title` and `summary` are plain text, `content_html` is HTML."""
        items = []
        for signal, card, content in self._entries():
            url = self.url(signal_path(signal.slug or ""))
            item: dict[str, Any] = {
                "id": url,
                "url": url,
                "external_url": card.source_url,
                "title": card.title,
                "content_html": content.strip(),
                "summary": meta.description(card),
                "date_published": _iso(signal.published),
                "tags": [card.category],
            }
            if signal.updated_at:
                item["date_modified"] = _updated(signal)
            items.append(item)
        feed = {
            "version": JSON_FEED_VERSION,
            "title": f"{self.settings.name} · Signal stream",
            "home_page_url": self.url(paths.STREAM),
            "feed_url": self.url(paths.JSON_FEED),
            "description": self.settings.tagline,
            "language": "en",
            "authors": [{"name": self.settings.name, "url": self.base}],
            "items": items,
        }
        body = json.dumps(feed, ensure_ascii=False, indent=1)
        return Page(paths.JSON_FEED, JSON_FEED_TYPE, body.encode("utf-8"))

    def sitemap(self, issue_weeks: list[str]) -> Page:
        """The stream, every public signal, the archive and each of `issue_weeks`' pages."""
        urls: list[tuple[str, str]] = [(self.url(paths.STREAM), "")]
        urls += [
            (self.url(signal_path(s.slug)), _updated(s)[:10])
            for s in self.store.stream.all()
            if s.slug
        ]
        archive = f"{self.settings.public_url}/archive/"
        urls.append((archive, ""))
        urls += [(f"{archive}{week}/", "") for week in issue_weeks]
        body = self.env.get_template("site/sitemap.xml.j2").render(urls=urls)
        return Page(paths.SITEMAP, XML_TYPE, body.encode("utf-8"))
