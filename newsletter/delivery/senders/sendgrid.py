"""The `sendgrid` sender: v3 Mail Send with one personalization per reader, up to 1,000 a call.

The readers' copies differ only where per-reader values were filled in (greeting, unsubscribe
link), so one call carries the shared content once with substitution tags at those places, and
each personalization carries its own values, recipient and List-Unsubscribe headers. Copies that
do not line up with the first are sent in calls of their own. The answer is 202 with an
`X-Message-Id` header.

SendGrid's Mail Send takes no idempotency key, and finding out afterwards whether a message was
accepted needs its Email Activity feed (a paid add-on we do not assume): a call whose answer is
lost stays `unknown` for the operator to decide. One invalid address fails its whole request
(400 naming the personalization); the delivery state machine splits such a request in halves,
so only that reader fails.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from email.utils import parseaddr
from typing import Any

import httpx

from newsletter.delivery.message import Message
from newsletter.delivery.senders.base import Sender, SenderUnavailable, SendResult
from newsletter.delivery.senders.http import error_for, json_or_empty, post
from newsletter.errors import SendError

#: SendGrid's documented limits per personalization and per request
MAX_SUBSTITUTION_BYTES = 10_000
MAX_PERSONALIZATIONS = 1000
_HTML_PIECES = re.compile(r"(?=<)")


@dataclass(frozen=True)
class Shared:
    """Content with a tag at every place the readers' copies differ, and each reader's values."""

    html: str
    text: str
    values: list[dict[str, str]]


def _pieces(html: str, text: str) -> list[str]:
    return [*_HTML_PIECES.split(html), "\x00", *text.splitlines(keepends=True)]


def share(messages: Sequence[Message], tag_prefix: str) -> tuple[Shared, list[int]]:
    """Factor the messages that line up with the first into shared content plus values.

    Returns the shared content and the indexes of the messages it covers (always the first).
    """
    split = [_pieces(m.html, m.text) for m in messages]
    first = split[0]
    members = [i for i, p in enumerate(split) if len(p) == len(first)]
    varying = [k for k in range(len(first)) if any(split[i][k] != first[k] for i in members)]
    tags = {k: f"{tag_prefix}{n}-" for n, k in enumerate(varying)}
    values = [{tags[k]: split[i][k] for k in varying} for i in members]
    fits = [
        sum(len(k) + len(v.encode()) for k, v in vals.items()) <= MAX_SUBSTITUTION_BYTES
        for vals in values
    ]
    if not all(fits):
        members, values = [0], [{}]
        tags = {}
    template = [tags.get(k, piece) for k, piece in enumerate(first)]
    cut = template.index("\x00")
    return Shared("".join(template[:cut]), "".join(template[cut + 1 :]), values), members


def _address(text: str) -> dict[str, str]:
    name, email = parseaddr(text)
    return {"email": email, "name": name} if name else {"email": email}


class SendGridSender(Sender):
    name = "sendgrid"
    batch_size = MAX_PERSONALIZATIONS

    def __init__(
        self, api_key: str, client: httpx.Client, *, batch_size: int = MAX_PERSONALIZATIONS
    ) -> None:
        self.api_key = api_key
        self.client = client
        self.batch_size = max(1, min(batch_size, MAX_PERSONALIZATIONS))

    def payload(self, messages: Sequence[Message], shared: Shared) -> dict[str, Any]:
        first = messages[0]
        personalizations = []
        for message, values in zip(messages, shared.values, strict=True):
            to = {
                "email": message.to_addr,
                **({"name": message.to_name} if message.to_name else {}),
            }
            item: dict[str, Any] = {
                "to": [to],
                "headers": {"Message-ID": message.message_id, **message.headers},
                "custom_args": {"message_id": message.message_id},
            }
            if message.subject != first.subject:
                item["subject"] = message.subject
            if values:
                item["substitutions"] = values
            personalizations.append(item)
        body: dict[str, Any] = {
            "personalizations": personalizations,
            "from": _address(first.from_addr),
            "subject": first.subject,
            "content": [
                {"type": "text/plain", "value": shared.text},
                {"type": "text/html", "value": shared.html},
            ],
        }
        if first.tag:
            body["categories"] = [first.tag[:255]]
        return body

    def close(self) -> None:
        self.client.close()

    def send(self, messages: Sequence[Message]) -> list[SendResult]:
        results: dict[int, SendResult] = {}
        remaining = list(range(len(messages)))
        while remaining:
            group = [messages[i] for i in remaining]
            shared, members = share(group, f"-nl{secrets.token_hex(4)}v")
            chosen = [remaining[m] for m in members]
            batch = [messages[i] for i in chosen]
            try:
                provider_id = self._post(self.payload(batch, shared))
                for i in chosen:
                    results[i] = SendResult(messages[i], provider_id=provider_id)
            except SenderUnavailable:
                raise
            except SendError as exc:
                if len(chosen) == len(messages):
                    raise
                for i in chosen:
                    results[i] = SendResult(messages[i], error=exc)
            remaining = [i for i in remaining if i not in set(chosen)]
        return [results[i] for i in range(len(messages))]

    def _post(self, body: dict[str, Any]) -> str | None:
        response = post(
            self.client,
            self.name,
            "/v3/mail/send",
            json=body,
            headers={"Authorization": f"Bearer {self.api_key}"},
        )
        if response.status_code not in (200, 202):
            errors = json_or_empty(response)
            listed = errors.get("errors", []) if isinstance(errors, dict) else []
            detail = "; ".join(str(e.get("message", "")) for e in listed if isinstance(e, dict))
            raise error_for(response, self.name, detail, "SENDGRID_API_KEY")
        return response.headers.get("X-Message-Id")
