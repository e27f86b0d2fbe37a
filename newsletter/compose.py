"""One reader's message from the dispatch's compiled parts: pure, no I/O."""

from __future__ import annotations

from dataclasses import dataclass

from newsletter.message import Message, new_message_id
from newsletter.models import Subscriber
from newsletter.render import Rendered
from newsletter.settings import Settings
from newsletter.tokens import unsubscribe_token


@dataclass(frozen=True)
class Composer:
    rendered: Rendered
    settings: Settings
    secret: str
    tag: str

    def unsubscribe_url(self, subscriber: Subscriber) -> str:
        token = unsubscribe_token(self.secret, subscriber.id)
        return f"{self.settings.public_url}/unsubscribe/{token}"

    def compose(self, subscriber: Subscriber, *, subject_prefix: str = "") -> Message:
        url = self.unsubscribe_url(subscriber)
        name = " ".join((subscriber.name or "").split())
        html, text = self.rendered.personalise(
            {
                "unsubscribe_url": url,
                "greeting": f"Hello {name}," if name else "Hello,",
                "email": subscriber.email,
            }
        )
        settings = self.settings
        headers = {
            "List-Unsubscribe": f"<{url}>, <mailto:{settings.from_email}?subject=unsubscribe>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            "List-Id": f"{settings.name} <{settings.list_id_value}>",
        }
        if settings.reply_to:
            headers["Reply-To"] = settings.reply_to
        return Message(
            from_addr=settings.from_addr,
            to_addr=subscriber.email,
            to_name=name,
            subject=subject_prefix + self.rendered.subject,
            html=html,
            text=text,
            message_id=new_message_id(settings.from_domain),
            headers=headers,
            tag=self.tag,
        )
