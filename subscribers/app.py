"""The Flask application: shared state, security headers, error pages, health check."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, current_app, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from newsletter.delivery.senders import make_sender as default_make_sender
from newsletter.delivery.senders.base import Sender
from newsletter.dispatch.render import templates_dir
from newsletter.settings import Settings
from newsletter.store import Store
from subscribers import clicks
from subscribers.mailer import Mailer
from subscribers.stores import ThreadStores

log = logging.getLogger(__name__)

#: the largest request body anything here takes (webhook batches; a sign-up takes far less):
#: waitress refuses a bigger one before reading it
MAX_BODY_BYTES = 1024 * 1024

#: pages of this service: nothing but our own stylesheet, no scripts at all
PAGE_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' https: data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


@dataclass
class Web:
    """What every request handler shares."""

    settings: Settings
    stores: ThreadStores
    mailer: Mailer
    secret: str

    @property
    def store(self) -> Store:
        return self.stores.get()


def web() -> Web:
    return current_app.extensions["newsletter"]


def create_app(
    settings: Settings,
    *,
    make_sender: Callable[[Settings], Sender] | None = None,
    migrate: bool = True,
) -> Flask:
    """The web service for these settings; `make_sender` picks how notices leave (tests).

    `migrate=False` in worker processes: the parent migrated before forking them.
    """
    app = Flask("subscribers", template_folder=str(templates_dir() / "web"), static_folder=None)
    app.config.update(MAX_CONTENT_LENGTH=MAX_BODY_BYTES, JSON_SORT_KEYS=False)
    stores = ThreadStores(settings.db, migrate=migrate)
    secret = stores.get().secret_key(settings.secret_key)
    mailer = Mailer(settings, stores, make_sender or default_make_sender)
    app.extensions["newsletter"] = Web(settings, stores, mailer, secret)
    clicks.install(app, settings, stores, secret)  # /r/<token>, ahead of Flask's routing

    from subscribers import archive, links, preferences, signup, stream, webhooks

    app.register_blueprint(signup.blueprint)
    app.register_blueprint(links.blueprint)
    app.register_blueprint(webhooks.blueprint)
    app.register_blueprint(archive.blueprint)
    app.register_blueprint(stream.blueprint)
    app.register_blueprint(preferences.blueprint)
    app.add_url_rule("/healthz", "healthz", healthz)
    app.after_request(_security_headers)
    app.register_error_handler(HTTPException, _http_error)
    app.context_processor(lambda: {"settings": settings})
    return app


def healthz() -> tuple[Response, int]:
    try:
        web().store.db.execute("SELECT 1").fetchone()
    except Exception as exc:  # report, don't crash: this is what a monitor polls
        log.error("health check failed: %s", exc)
        return jsonify(status="error"), 503
    return jsonify(status="ok"), 200


def _security_headers(response: Response) -> Response:
    headers = response.headers
    headers.setdefault("Content-Security-Policy", PAGE_CSP)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "no-referrer")  # our URLs carry tokens
    if request.path != "/static/site.css" and not request.path.startswith("/archive/"):
        headers.setdefault("Cache-Control", "no-store")
    return response


def page(heading: str, *paragraphs: str, status: int = 200, back: bool = False) -> Any:
    """A plain page of the service: a heading and a few sentences."""
    html = render_template("message.html", heading=heading, paragraphs=paragraphs, back=back)
    return html, status


def _http_error(exc: HTTPException) -> Any:
    status = exc.code or 500
    if request.is_json or request.path.startswith("/webhooks/"):
        return jsonify(ok=False, error=exc.description or exc.name), status
    messages = {
        404: ("Page not found", "There is nothing at this address."),
        405: ("Not allowed", "This page cannot be used that way."),
        413: ("Too much data", "What was sent is far longer than this form accepts."),
    }
    heading, text = messages.get(status, (exc.name, "Something went wrong. Please try again."))
    return page(heading, text, status=status, back=True)
