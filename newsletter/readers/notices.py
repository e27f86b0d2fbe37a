"""The mails readers are owed outside the dispatch: confirmation, "come back", "you are
already subscribed". Composed from `templates/web/mail/` and handed to a sender.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import jinja2

from newsletter.delivery.headers import header_text
from newsletter.delivery.message import Message, new_message_id
from newsletter.delivery.senders.base import Sender
from newsletter.dispatch.render import templates_dir
from newsletter.errors import SendError
from newsletter.readers.subscriptions import Notice
from newsletter.settings import Settings
from newsletter.store import Store
from newsletter.tokens import make_token, unsubscribe_token

_mail_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(templates_dir() / "web" / "mail")),
    autoescape=jinja2.select_autoescape(enabled_extensions=("html", "html.j2")),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
)

_SUBJECTS = {
    "confirm": "Confirm your subscription to {name}",
    "resubscribe": "Confirm your subscription to {name}",
    "already": "You are already subscribed to {name}",
}


def confirm_url(settings: Settings, secret: str, notice: Notice) -> str:
    purpose = "resubscribe" if notice.kind == "resubscribe" else "confirm"
    token = make_token(
        secret, purpose, notice.subscriber_id, notice.token_nonce, issued_at=int(notice.claimed_at)
    )
    return f"{settings.public_url}/confirm/{token}"


def compose_notice(settings: Settings, secret: str, notice: Notice) -> Message:
    """The confirmation (or "you are already subscribed") mail for one sign-up.

    It goes to an address nobody has confirmed yet, so nothing the person who posted the form
    typed (the name) appears in it: not in the greeting, not in To:.
    """
    token = unsubscribe_token(secret, notice.subscriber_id, notice.token_nonce)
    unsubscribe = f"{settings.public_url}/unsubscribe/{token}"
    context = {
        "kind": notice.kind,
        "settings": settings,
        "confirm_url": confirm_url(settings, secret, notice) if notice.kind != "already" else "",
        "unsubscribe_url": unsubscribe,
        "days": settings.confirm_days,
    }
    headers = {"Auto-Submitted": "auto-generated"}
    if settings.reply_to:
        headers["Reply-To"] = settings.reply_to
    return Message(
        from_addr=settings.from_addr,
        to_addr=notice.email,
        to_name="",
        subject=header_text(_SUBJECTS[notice.kind].format(name=settings.name)),
        html=_mail_env.get_template("notice.html.j2").render(context),
        text=_mail_env.get_template("notice.txt.j2").render(context),
        message_id=new_message_id(settings.from_domain),
        headers=headers,
        tag="notices",
    )


def send_notices(
    store: Store,
    settings: Settings,
    sender: Sender,
    notices: Iterable[Notice],
    *,
    progress: Callable[[int], None] | None = None,
) -> tuple[int, list[str]]:
    """Mail each notice; a failed one is released so the next sign-up can try again at once.

    Returns (sent, errors).
    """
    secret = store.secret_key(settings.secret_key)
    sent, errors = 0, []
    for notice in notices:
        try:
            results = sender.send([compose_notice(settings, secret, notice)])
            error = results[0].error
        except SendError as exc:
            error = exc
        with store.subscribers.writing():
            if error is None:
                sent += 1
                store.subscribers.log(notice.subscriber_id, f"notice.{notice.kind}", "mail")
            else:
                store.subscribers.release_notice(notice.subscriber_id, notice.claimed_at)
                errors.append(f"{notice.email}: {error}")
        if progress:
            progress(1)
    return sent, errors
