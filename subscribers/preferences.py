"""A reader's preferences page, `/preferences/<token>`, and the new address's confirmation,
`/address/<token>`.

The page is reached from the "Manage preferences" link of every mail. Its `GET` changes nothing;
its `POST` (our CSRF pair, like the sign-up form) saves everything at once or nothing. A link
that is not genuine (forged, altered, another reader's id, rotated, erased) gets one answer,
the same for all, and changes nothing. The new address's link, like a confirmation link, shows
one button (`GET`, so mail scanners change nothing) and acts on its `POST`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, make_response, render_template, request

from newsletter.errors import SubscriberError
from newsletter.readers.preferences import (
    MAX_PAUSE_WEEKS,
    OPEN,
    PAUSE_WEEKS,
    Changes,
    Saved,
    change_link_status,
    follow_change_link,
    preferences_of,
    preferences_row,
    save_changes,
    unsubscribe_by_link,
)
from newsletter.readers.subscriptions import SIGNUP_WINDOW, RateLimited
from subscribers import csrf
from subscribers.app import page, web

blueprint = Blueprint("preferences", __name__)

#: the most section titles one post may name (far more than any brief has)
MAX_FIELDS = 200

INVALID = (
    "This link is not valid",
    "It may have been copied incompletely, or it is from an issue older than your current "
    "links. Nothing has changed. Use the \u201cManage preferences\u201d link at the bottom of "
    "the latest issue.",
)
ENDED = (
    "This subscription has ended",
    "Nothing is sent to it any more. You can subscribe again from the sign-up page.",
)


@blueprint.get("/preferences/<token>")
def show(token: str) -> Any:
    w = web()
    row = preferences_row(w.store, w.settings, token)
    if row is None:
        return page(*INVALID, status=404, back=True)
    if row["status"] not in OPEN:
        return page(*ENDED, back=True)
    return _form(row)


@blueprint.post("/preferences/<token>")
def save(token: str) -> Any:
    w = web()
    if not csrf.check(w.secret, request.cookies.get(csrf.COOKIE), request.form.get(csrf.FIELD)):
        return page(
            "This form has expired",
            "Open your preferences link again and make your changes there (cookies must be "
            "enabled for this site). Nothing has changed.",
            status=403,
        )
    if request.form.get("action") == "unsubscribe":
        if not unsubscribe_by_link(w.store, w.settings, token):
            return page(*INVALID, status=404, back=True)
        return page(
            "You are unsubscribed",
            f"You will not receive {w.settings.name} any more.",
            "Changed your mind? You can subscribe again from the sign-up page.",
            back=True,
        )
    changes = Changes(
        on=tuple(request.form.getlist("section")[:MAX_FIELDS]),
        shown=tuple(request.form.getlist("shown")[:MAX_FIELDS]),
        pause=request.form.get("pause", "")[:8],
        new_email=request.form.get("email", "")[:300],
    )
    ip = request.remote_addr or "unknown"
    try:
        saved = save_changes(w.store, w.settings, token, changes, ip=ip)
    except RateLimited:
        response = make_response(
            *page(
                "Too many changes",
                "Please wait an hour and try again. Nothing has changed.",
                status=429,
            )
        )
        response.headers["Retry-After"] = str(int(SIGNUP_WINDOW))
        return response
    except SubscriberError as exc:
        row = preferences_row(w.store, w.settings, token)
        if row is None:
            return page(*INVALID, status=404, back=True)
        return _form(row, error=_why(exc), email=changes.new_email[:254], status=400)
    if saved is None:
        return page(*INVALID, status=404, back=True)
    if saved.address_asked:
        w.mailer.nudge()  # the new address's confirmation (or the taken one's owner's notice)
    row = preferences_row(w.store, w.settings, token)
    if row is None:  # unsubscribed or erased in between
        return page(*INVALID, status=404, back=True)
    return _form(row, notes=_notes(saved))


def _why(exc: SubscriberError) -> str:
    text = str(exc)
    if text.startswith("invalid address"):
        return "The new address does not look like an email address. Nothing has changed."
    return text[:1].upper() + text[1:] + ". Nothing has changed."


def _notes(saved: Saved) -> list[str]:
    notes = ["Your preferences are saved."]
    if saved.paused_until is not None:
        notes.append(f"Nothing will be sent until {_day(saved.paused_until)}; then it resumes.")
    if saved.resumed:
        notes.append("Your pause has ended: the next issue will reach you.")
    if saved.address_asked:
        notes.append(
            "We have sent a confirmation link to the new address. Your address changes when "
            "it is opened; until then everything goes to your current address."
        )
    return notes


def _day(when: float) -> str:
    day = datetime.fromtimestamp(when, UTC)
    return f"{day:%A}, {day:%B} {day.day}, {day.year}"


def _form(
    row: dict[str, Any],
    *,
    error: str | None = None,
    notes: list[str] | None = None,
    email: str = "",
    status: int = 200,
) -> Response:
    w = web()
    prefs = preferences_of(w.store, w.settings, row)
    now = datetime.now(UTC).timestamp()
    cookie, field = csrf.issue(w.secret, request.cookies.get(csrf.COOKIE))
    html = render_template(
        "preferences.html",
        action=request.path,
        csrf_token=field,
        prefs=prefs,
        paused=prefs.paused_at(now),
        paused_day=_day(prefs.paused_until) if prefs.paused_at(now) and prefs.paused_until else "",
        weeks=PAUSE_WEEKS,
        max_weeks=MAX_PAUSE_WEEKS,
        error=error,
        notes=notes or [],
        email=email,
        can_move=prefs.status == "active",
    )
    response = make_response(html, status)
    csrf.set_cookie(response, cookie, secure=w.settings.public_url.startswith("https://"))
    return response


# --- the new address's confirmation ----------------------------------------------------------


@blueprint.get("/address/<token>")
def address_page(token: str) -> Any:
    w = web()
    outcome = change_link_status(w.store, w.settings, token)
    if outcome == "ready":
        return render_template("address.html", action=request.path)
    return _address_outcome(outcome)


@blueprint.post("/address/<token>")
def address(token: str) -> Any:
    w = web()
    if request.form.get("confirm") != "yes":
        return address_page(token)
    outcome = follow_change_link(w.store, w.settings, token)
    if outcome == "changed":
        w.mailer.nudge()  # the old address's notice
    return _address_outcome(outcome)


def _address_outcome(outcome: str) -> Any:
    w = web()
    if outcome == "changed":
        return page(
            "Your address is changed",
            f"From now on {w.settings.name} comes to this address. The old address has been "
            "told, and nothing more will be sent to it.",
        )
    if outcome == "used":
        return page(
            "This link has already been used",
            "It was used, or a newer request replaced it. Nothing has changed.",
            back=True,
        )
    if outcome == "taken":
        return page(
            "This address already has a subscription",
            "It cannot take a second one. Nothing has changed.",
            status=409,
            back=True,
        )
    if outcome == "expired":
        return page(
            "This link has expired",
            f"These links work for {w.settings.confirm_days} days. Nothing has changed. Ask "
            "again from your preferences page.",
            status=410,
            back=True,
        )
    return page(*INVALID, status=404, back=True)
