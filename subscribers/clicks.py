"""`GET /r/<token>`: a tracked link in a dispatch. 302 to the stored URL (the open pixel: a
1x1 GIF), one hit counted; a forged, altered or unknown token gets the service's 404 page and
counts nothing. HEAD is answered the same way and counted as automated.

The route is a small WSGI app in front of Flask rather than a blueprint: Flask's request
machinery alone costs more than the rest of a redirect (measured on 2 cores with waitress:
about 2,750 bare Flask redirects/s against 7,900 from plain WSGI), and this is the one route
that every reader's every click hits, and link scanners in bursts. Anything it does not serve
(other methods, bad tokens) goes on to Flask, so errors look like every other page's.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask

from newsletter.engagement.recorder import SETTLE_EVERY, Recorder, maintain, settle
from newsletter.engagement.redirect import PIXEL, Redirects
from newsletter.settings import Settings
from newsletter.store import Store
from subscribers.stores import ThreadStores

#: keys the visitor hashes of burst detection (engagement.bursts). Made when `serve` starts,
#: before it forks its workers (so they all hash alike), and never written anywhere: once serve
#: stops, no hash left in the queue by a crash can be tied to an address again.
SALT = secrets.token_bytes(32)
EXTENSION = "newsletter.clicks"
#: set by `serve`'s parent process before it forks workers: it classifies the queued hits
#: itself, so the workers answering requests only write theirs (no classification work there)
_PARENT_SETTLES = False

log = logging.getLogger(__name__)
_HEADERS = [
    ("Cache-Control", "no-store"),  # every click must reach us to be counted
    ("Referrer-Policy", "no-referrer"),
    ("X-Content-Type-Options", "nosniff"),
]

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class ClickRoute:
    def __init__(self, app: WSGIApp, redirects: Redirects) -> None:
        self.app = app
        self.redirects = redirects

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path: str = environ.get("PATH_INFO", "")
        method: str = environ.get("REQUEST_METHOD", "")
        if not path.startswith("/r/") or method not in ("GET", "HEAD"):
            return self.app(environ, start_response)
        followed = self.redirects.follow(
            path[3:],
            method,
            environ.get("HTTP_USER_AGENT", ""),
            environ.get("REMOTE_ADDR", ""),
        )
        if followed is None:
            return self.app(environ, start_response)  # the service's own 404 page
        if followed.location is None:
            start_response(
                "200 OK",
                [("Content-Type", "image/gif"), ("Content-Length", str(len(PIXEL))), *_HEADERS],
            )
            return [PIXEL]
        start_response(
            "302 Found", [("Location", followed.location), ("Content-Length", "0"), *_HEADERS]
        )
        return [b""]


def install(app: Flask, settings: Settings, stores: ThreadStores, secret: str) -> Recorder:
    """Put `/r/` in front of the app; returns the worker's recorder (closed on shutdown)."""
    recorder = Recorder(stores.get, settles=not _PARENT_SETTLES)
    redirects = Redirects(settings, secret, SALT, stores.get, recorder)
    app.wsgi_app = ClickRoute(app.wsgi_app, redirects)  # type: ignore[method-assign]
    app.extensions[EXTENSION] = recorder
    return recorder


def recorder_of(app: Flask) -> Recorder:
    found: Recorder = app.extensions[EXTENSION]
    return found


def settle_all(settings: Settings) -> None:
    """When no worker is serving (start, and after the last one stopped): classify every
    queued hit, fold raw rows past their retention."""
    store = Store.open(settings.db, migrate=False)
    try:
        maintain(store, settings, everything=True)
    finally:
        store.close()


class Settler:
    """The serve parent's part: classify the workers' queued hits once a second."""

    def __init__(self, settings: Settings) -> None:
        global _PARENT_SETTLES
        _PARENT_SETTLES = True  # the workers forked from now on leave it to this process
        self.settings = settings
        self._store: Store | None = None
        self._last = time.monotonic()

    def tick(self) -> None:
        if time.monotonic() - self._last < SETTLE_EVERY:
            return
        self._last = time.monotonic()
        try:
            if self._store is None:
                self._store = Store.open(self.settings.db, migrate=False)
            settle(self._store)
        except Exception:  # the hits stay queued: the next tick (or the stop) classifies them
            log.exception("queued clicks not classified yet")

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
        settle_all(self.settings)  # every worker has written its clicks: classify the last
