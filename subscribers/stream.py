"""The signal stream on the web: `/signals/` (paged, by category, by week), a page per public
signal at `/signals/<slug>/` (an old slug answers 301), the Atom and JSON feeds and
`/sitemap.xml`. Pages come from `newsletter.site` (the same the static build writes), kept
rendered while nothing changed; each visitor's CSRF token is put into the subscribe box on the
way out, so the box posts to our own protected form.
"""

from __future__ import annotations

import secrets
from typing import Any

from flask import Blueprint, Response, abort, current_app, make_response, redirect, request

from newsletter.dispatch.render import make_environment
from newsletter.site.cache import PageCache
from newsletter.site.pages import Filter, Moved, Page, Site
from newsletter.site.paths import SERVED, SITEMAP, stream_path
from newsletter.weeks import Week
from subscribers import csrf
from subscribers.app import web

blueprint = Blueprint("stream", __name__)

PAGE_CACHE = "private, no-cache"  # carries the visitor's CSRF cookie: never a shared cache
FEED_CACHE = "public, max-age=300"


class Pages:
    """Per process: the renderer and the pages it has kept."""

    def __init__(self) -> None:
        self.cache = PageCache()
        self.placeholder = f"csrf-{secrets.token_hex(12)}"
        self.env = make_environment()  # templates compiled once per process

    def site(self) -> Site:
        w = web()
        return Site(w.store, w.settings, SERVED, self.env)


def _pages() -> Pages:
    found: Pages | None = current_app.extensions.get("newsletter.stream")
    if found is None:
        found = current_app.extensions.setdefault("newsletter.stream", Pages())
    return found


def _cached(key: Any, make: Any) -> Any:
    return _pages().cache.get(web().store, key, make)


def _html(page: Page) -> Response:
    """The page with this visitor's CSRF token in its subscribe box (and its cookie set)."""
    w = web()
    cookie, field = csrf.issue(w.secret, request.cookies.get(csrf.COOKIE))
    body = page.body.replace(_pages().placeholder.encode(), field.encode(), 1)
    response = make_response(body)
    response.headers["Content-Type"] = page.content_type
    response.headers["Cache-Control"] = PAGE_CACHE
    csrf.set_cookie(response, cookie, secure=w.settings.public_url.startswith("https://"))
    return response


def _file(page: Page) -> Response:
    response = make_response(page.body)
    response.headers["Content-Type"] = page.content_type
    response.headers["Cache-Control"] = FEED_CACHE
    return response


def _stream(number: int, view: Filter) -> Any:
    if number == 1 and request.path.rstrip("/").endswith("/page/1"):
        return redirect("/" + stream_path(1, category=view.category, week=view.week), 301)
    token = _pages().placeholder

    def make() -> Page | None:
        site = _pages().site()
        # the filters' lists are the same on every page of the stream: made once per change
        weeks = _cached("weeks", site.weeks)
        categories = _cached("categories", site.categories)
        return site.stream_page(number, view, csrf_token=token, weeks=weeks, categories=categories)

    page = _cached(("stream", number, view), make)
    if page is None:
        abort(404)
    return _html(page)


@blueprint.get("/signals/")
@blueprint.get("/signals/page/<int:number>/")
def stream(number: int = 1) -> Any:
    return _stream(number, Filter())


@blueprint.get("/signals/category/<key>/")
@blueprint.get("/signals/category/<key>/page/<int:number>/")
def category(key: str, number: int = 1) -> Any:
    name = _cached(("category", key), lambda: _pages().site().find_category(key))
    if name is None:
        abort(404)
    return _stream(number, Filter(category=name))


@blueprint.get("/signals/week/<week>/")
@blueprint.get("/signals/week/<week>/page/<int:number>/")
def week(week: str, number: int = 1) -> Any:
    try:
        chosen = Week.parse(week)
    except ValueError:
        abort(404)
    return _stream(number, Filter(week=chosen))


@blueprint.get("/signals/<slug>/")
def signal(slug: str) -> Any:
    token = _pages().placeholder
    found = _cached(("signal", slug), lambda: _pages().site().signal_page(slug, csrf_token=token))
    if isinstance(found, Moved):
        return redirect("/" + found.path, 301)
    if found is None:
        abort(404)
    return _html(found)


@blueprint.get("/signals/feed.xml")
def atom() -> Response:
    return _file(_cached("atom", lambda: _pages().site().atom()))


@blueprint.get("/signals/feed.json")
def json_feed() -> Response:
    return _file(_cached("json", lambda: _pages().site().json_feed()))


@blueprint.get(f"/{SITEMAP}")
def sitemap() -> Response:
    def make() -> Page:
        w = web()
        weeks = [row["week"] for row in w.store.dispatches.list() if row["html"] is not None]
        return _pages().site().sitemap(weeks)

    return _file(_cached("sitemap", make))
