"""The sign-up form: `GET /` and `POST /subscribe` (HTML form, embedded form or JSON).

Checks, in order: CSRF (our form) or an allowed Origin (embedded form, JSON), the honeypot,
the per-IP limit, the address, the per-address limit. Whatever the address's history, a
valid sign-up gets the same answer, after the same work (one upsert, one event; a mail
composed on the notice threads, sent only when one is owed); what happened is told by mail, to
the address's owner.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, make_response, render_template, request

from newsletter.errors import SubscriberError
from newsletter.readers.sections import known_sections, sections_off_for
from newsletter.readers.subscriptions import (
    SIGNUP_WINDOW,
    InvalidName,
    RateLimited,
    request_signup,
)
from subscribers import csrf
from subscribers.app import page, web

blueprint = Blueprint("signup", __name__)

MAX_BODY = 32 * 1024
THANKS = (
    "Check your inbox",
    "We have sent a confirmation link to the address you gave. Open it to start receiving the "
    "weekly dispatch. If nothing arrives within a few minutes, look in your spam folder.",
)


@blueprint.get("/")
def index() -> Any:
    # a signal page built for another host sends readers here with their address filled in
    return _form_page(email=request.args.get("email", "")[:254])


@blueprint.get("/static/site.css")
def stylesheet() -> Response:
    response = make_response(render_template("site.css"))
    response.mimetype = "text/css"
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response


@blueprint.route("/subscribe", methods=["OPTIONS"])
def preflight() -> Response:
    response = make_response("", 204)
    if _allowed_origin():
        response.headers["Access-Control-Allow-Methods"] = "POST"
        response.headers["Access-Control-Allow-Headers"] = "Content-Type"
        response.headers["Access-Control-Max-Age"] = "600"
    return _cors(response)


@blueprint.post("/subscribe")
def subscribe() -> Any:
    w = web()
    if (request.content_length or 0) > MAX_BODY:
        return _refuse(413, "Too much data", "What was sent is far longer than this form accepts.")
    as_json = request.is_json
    data = (request.get_json(silent=True) if as_json else request.form) or {}
    if not isinstance(data, dict):
        return _refuse(400, "Nothing to subscribe", "Send an object with an email field.")
    origin = _allowed_origin()
    token_ok = csrf.check(w.secret, request.cookies.get(csrf.COOKIE), _text(data, csrf.FIELD))
    if not token_ok and not origin:
        return _refuse(
            403,
            "This form has expired",
            "Reload the sign-up page and try again (cookies must be enabled for this site).",
        )
    if _text(data, "website"):  # the honeypot: people never see it, bots fill it in
        return _thanks(as_json)
    ip = request.remote_addr or "unknown"
    email, name = _text(data, "email"), _text(data, "name")
    form = f"json from {origin}" if as_json else f"form on {origin}" if origin else "form at /"
    try:
        off = _sections_off(data, as_json)
    except SubscriberError as exc:
        if as_json:
            return _cors(make_response(jsonify(ok=False, error=str(exc)), 400))
        return _form_page(error=str(exc), email=email[:254], name=name[:200], status=400)
    try:
        request_signup(w.store, w.settings, email, name=name, ip=ip, form=form, sections_off=off)
    except RateLimited:
        return _too_many()
    except SubscriberError as exc:
        message = (
            "Please write your name as plain text."
            if isinstance(exc, InvalidName)
            else "That does not look like an email address. Please check it and try again."
        )
        if as_json:
            return _cors(make_response(jsonify(ok=False, error=message), 400))
        return _form_page(error=message, email=email[:254], name=name[:200], status=400)
    # The notice (if one is owed) was queued with the sign-up; a worker thread sends it. The
    # workers are nudged either way, so the work this answer leaves behind looks the same.
    w.mailer.nudge()
    return _thanks(as_json)


def _sections_off(data: Any, as_json: bool) -> list[str]:
    """The sections the sign-up leaves out: JSON's `sections` (a list of titles), or the form's
    ticks when it offered them (NEWSLETTER_SIGNUP_SECTIONS); none asked for, none left out."""
    w = web()
    if as_json:
        if "sections" not in data:
            return []
        chosen = data["sections"]
        if not isinstance(chosen, list) or not all(isinstance(t, str) for t in chosen):
            raise SubscriberError('sections: a list of section titles, e.g. ["AI", "Energy"]')
    elif data.get("sections_offered"):
        chosen = data.getlist("section")
    else:
        return []
    if len(chosen) > 200 or not any(t.strip() for t in chosen):
        raise SubscriberError("sections: choose at least one section")
    return sections_off_for(w.store, w.settings, chosen)


def _text(data: Any, key: str) -> str:
    value = data.get(key) if hasattr(data, "get") else None
    return value if isinstance(value, str) else ""


def _allowed_origin() -> str | None:
    origin = (request.headers.get("Origin") or "").rstrip("/")
    allowed = {o.rstrip("/") for o in web().settings.cors_origins}
    return origin if origin and origin in allowed else None


def _cors(response: Response) -> Response:
    origin = _allowed_origin()
    if origin:
        response.headers["Access-Control-Allow-Origin"] = origin
    response.headers.add("Vary", "Origin")
    return response


def _form_page(error: str | None = None, status: int = 200, **values: str) -> Response:
    w = web()
    cookie, field = csrf.issue(w.secret, request.cookies.get(csrf.COOKIE))
    sections = known_sections(w.store, w.settings) if w.settings.signup_sections else []
    ticked = set(request.form.getlist("section")) if request.method == "POST" else set(sections)
    html = render_template(
        "index.html",
        csrf_token=field,
        error=error,
        sections=sections,
        ticked=ticked,
        **values,
    )
    response = make_response(html, status)
    csrf.set_cookie(response, cookie, secure=web().settings.public_url.startswith("https://"))
    return response


def _thanks(as_json: bool) -> Response:
    if as_json:
        return _cors(make_response(jsonify(ok=True, message=" ".join(THANKS)), 200))
    return _cors(make_response(*page(*THANKS)))


def _refuse(status: int, heading: str, text: str) -> Response:
    if request.is_json:
        return _cors(make_response(jsonify(ok=False, error=f"{heading}. {text}"), status))
    return _cors(make_response(*page(heading, text, status=status, back=True)))


def _too_many() -> Response:
    response = _refuse(429, "Too many sign-ups", "Please wait an hour and try again.")
    response.headers["Retry-After"] = str(int(SIGNUP_WINDOW))
    return response
