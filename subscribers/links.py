"""The links in mail: `/confirm/<token>` and `/unsubscribe/<token>`.

`GET /unsubscribe/<token>` only shows a button, so a link scanner that opens every URL in a
message unsubscribes nobody; `POST` does it, and takes the RFC 8058 one-click body
(`List-Unsubscribe=One-Click`) from a mail client with no cookie or CSRF token: the signed
token in the URL is the authority.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template, request

from newsletter.readers.subscriptions import (
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


@blueprint.get("/confirm/<token>")
def confirm(token: str) -> Any:
    w = web()
    outcome = follow_confirm_link(w.store, w.settings, token)
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
        return page(*INVALID, status=404, back=True)
    return render_template("unsubscribe.html", action=request.path)


@blueprint.post("/unsubscribe/<token>")
def unsubscribe(token: str) -> Any:
    w = web()
    one_click = request.form.get("List-Unsubscribe") == "One-Click"
    outcome = follow_unsubscribe_link(
        w.store, w.settings, token, method="one-click" if one_click else "page"
    )
    if outcome == "invalid":
        return page(*INVALID, status=404, back=True)
    return page(
        "You are unsubscribed",
        f"You will not receive {w.settings.name} any more.",
        "Changed your mind? You can subscribe again from the sign-up page.",
        back=True,
    )
