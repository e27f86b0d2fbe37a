"""The links in mail: `/confirm/<token>` and `/unsubscribe/<token>`.

Both `GET`s (and `HEAD`s) only show a page with one button, so a link scanner that opens every
URL in a message (mail security gateways prefetch them) confirms and unsubscribes nobody; the
button's `POST` acts. `POST /unsubscribe/<token>` also takes the RFC 8058 one-click body
(`List-Unsubscribe=One-Click`) from a mail client. Neither POST needs a cookie or CSRF token:
the signed token in the URL is the authority, and a form on another site can post it only if
it already has the link, which is all the power the link gives anyway.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template, request

from newsletter.readers.subscriptions import (
    confirm_link_status,
    follow_confirm_link,
    follow_unsubscribe_link,
    unsubscribe_link_valid,
)
from subscribers.app import page, web

blueprint = Blueprint("links", __name__)

INVALID = (
    "This link is not valid",
    "It may have been copied incompletely. Nothing has changed. Copy the whole link from the "
    "email, or sign up again to get a new one.",
)


UNSUBSCRIBE_INVALID = (
    "This link is not valid",
    "It may have been copied incompletely, or it is from an issue older than your current "
    "links. Nothing has changed. Use the unsubscribe link at the bottom of the latest issue.",
)


@blueprint.get("/confirm/<token>")
def confirm_page(token: str) -> Any:
    w = web()
    outcome = confirm_link_status(w.store, w.settings, token)
    if outcome in ("ready", "ready_again"):
        again = outcome == "ready_again"
        return render_template("confirm.html", action=request.path, again=again)
    return _confirm_outcome(outcome)


@blueprint.post("/confirm/<token>")
def confirm(token: str) -> Any:
    w = web()
    if request.form.get("confirm") != "yes":  # not our button: show it
        return confirm_page(token)
    return _confirm_outcome(follow_confirm_link(w.store, w.settings, token))


def _confirm_outcome(outcome: str) -> Any:
    w = web()
    if outcome == "confirmed":
        return page(
            "You are subscribed",
            f"Thank you. The next {w.settings.name} dispatch will reach your inbox.",
            "Every issue has a one-click unsubscribe link at the bottom.",
        )
    if outcome == "used":
        return page(
            "This link has already been used",
            "Confirmation links work once. Nothing has changed.",
            back=True,
        )
    if outcome == "expired":
        return page(
            "This link has expired",
            f"Confirmation links work for {w.settings.confirm_days} days. Nothing has changed. "
            "Sign up again to get a new one.",
            status=410,
            back=True,
        )
    return page(*INVALID, status=404, back=True)


@blueprint.get("/unsubscribe/<token>")
def unsubscribe_page(token: str) -> Any:
    w = web()
    if not unsubscribe_link_valid(w.store, w.settings, token):
        return page(*UNSUBSCRIBE_INVALID, status=404, back=True)
    return render_template("unsubscribe.html", action=request.path)


@blueprint.post("/unsubscribe/<token>")
def unsubscribe(token: str) -> Any:
    w = web()
    one_click = request.form.get("List-Unsubscribe") == "One-Click"
    outcome = follow_unsubscribe_link(
        w.store, w.settings, token, method="one-click" if one_click else "page"
    )
    if outcome == "invalid":
        return page(*UNSUBSCRIBE_INVALID, status=404, back=True)
    return page(
        "You are unsubscribed",
        f"You will not receive {w.settings.name} any more.",
        "Changed your mind? You can subscribe again from the sign-up page.",
        back=True,
    )
