"""One reader's message from the dispatch's compiled parts: pure, no I/O.

The dispatch is rendered and encoded once (`MimeTemplate`); composing a message only fills the
per-reader slots, so a message costs microseconds, not the milliseconds of a MIME build.
"""

from __future__ import annotations

import itertools
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

from newsletter.delivery.headers import display_name, header_text
from newsletter.delivery.message import Message, MimeTemplate, Prebuilt
from newsletter.dispatch.render import Rendered, has_html_special, html_escaped
from newsletter.engagement.links import reader_part
from newsletter.models import Subscriber
from newsletter.settings import Settings
from newsletter.tokens import preferences_token, unsubscribe_token

SAMPLE_NONCE = "sample-reader"


def reader_values(
    settings: Settings,
    subscriber: Subscriber,
    unsubscribe_url: str,
    secret: str,
    name: str,
) -> dict[str, str]:
    """The slot values for one reader: plain text, escaped later for the part they land in.

    The greeting names the reader only with `name`, their short plain name (`display_name`):
    names come from a public form. The preferences link, like the unsubscribe link, is a slot
    and never a tracked link (it carries the reader's token).
    """
    preferences = preferences_token(secret, subscriber.id, subscriber.token_nonce or SAMPLE_NONCE)
    reason = (
        f"You receive this because {subscriber.email} subscribed to {settings.name}"
        " and confirmed the subscription. You can leave at any time."
    )
    # Broken by hand, not textwrap: this runs once a message (the email address varies).
    reason_text = (
        f"You receive this because {subscriber.email}\nsubscribed to {settings.name}"
        " and confirmed the subscription.\nYou can leave at any time."
    )
    return {
        "unsubscribe_url": unsubscribe_url,
        "unsubscribe_label": "Unsubscribe",
        "preferences_url": f"{settings.public_url}/preferences/{preferences}",
        "greeting": f"Hello {name}," if name else "Hello,",
        "email": subscriber.email,
        "reason": reason,
        "reason_text": reason_text,
    }


@dataclass(frozen=True)
class Composer:
    rendered: Rendered
    settings: Settings
    secret: str
    tag: str

    @cached_property
    def template(self) -> MimeTemplate:
        return MimeTemplate(
            html_parts=self.rendered.html.parts,
            html_slots=self.rendered.html.slots,
            text_parts=self.rendered.text.parts,
            text_slots=self.rendered.text.slots,
        )

    @cached_property
    def _list_headers(self) -> tuple[str, dict[str, str], str]:
        """What every message shares (settings' address properties parse on each call)."""
        settings = self.settings
        mailto = f"<mailto:{settings.from_email}?subject=unsubscribe>"
        constant = {
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            "List-Id": f"{header_text(settings.name)} <{settings.list_id_value}>",
        }
        if settings.reply_to:
            constant["Reply-To"] = settings.reply_to
        return mailto, constant, settings.from_domain

    @cached_property
    def _ids(self) -> tuple[str, Iterator[int]]:
        """A random prefix for this composer and a counter: unique Message-IDs without asking
        the OS for randomness per message (a system call that is slow on some machines)."""
        return secrets.token_hex(8), itertools.count()

    def new_message_id(self) -> str:
        prefix, counter = self._ids
        domain = self._list_headers[2]
        return f"<{int(time.time())}.{prefix}{next(counter):x}@{domain}>"

    def unsubscribe_url(self, subscriber: Subscriber) -> str:
        # A sample reader (preview, test mail) has no nonce: its link is well-formed and
        # stable, and acts on nobody (no subscriber has id 0 or that nonce).
        nonce = subscriber.token_nonce or SAMPLE_NONCE
        token = unsubscribe_token(self.secret, subscriber.id, nonce)
        return f"{self.settings.public_url}/unsubscribe/{token}"

    def compose(
        self, subscriber: Subscriber, *, subject_prefix: str = "", message_id: str | None = None
    ) -> Message:
        """`message_id`: the identity given at the delivery's first claim (a retry reuses it)."""
        url = self.unsubscribe_url(subscriber)
        name = display_name(subscriber.name)
        values = reader_values(self.settings, subscriber, url, self.secret, name)
        if self.rendered.per_reader_links:  # the reader's part of every tracked link
            values["click"] = reader_part(self.secret, self.rendered.dispatch_id, subscriber.id)
        # one search over them all: where none holds one of HTML's five characters (most
        # readers), escaping changes nothing and the HTML values are the values themselves
        if has_html_special("".join(values.values())):
            html_values = {k: html_escaped(v) for k, v in values.items()}
        else:
            html_values = values
        rendered = self.rendered
        prebuilt = Prebuilt.of(self.template, values, html_values, rendered.html, rendered.text)
        mailto, constant, _ = self._list_headers
        headers = {"List-Unsubscribe": f"<{url}>, {mailto}", **constant}
        settings = self.settings
        return Message.from_template(
            prebuilt,
            from_addr=settings.from_addr,
            to_addr=subscriber.email,
            to_name=name,
            subject=header_text(subject_prefix + rendered.subject),
            message_id=message_id or self.new_message_id(),
            headers=headers,
            tag=self.tag,
        )
