"""The `resend` sender: Resend's batch endpoint, up to 100 messages a call.

POST /emails/batch with a bearer key and an `Idempotency-Key` made from the messages' ids, so a
retried call is not sent twice; the answer is `{"data": [{"id": ...}, ...]}` in order.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Any

import httpx

from newsletter.delivery.message import Message
from newsletter.delivery.senders.base import Sender, SendResult
from newsletter.delivery.senders.http import error_for, json_body, json_or_empty, post
from newsletter.errors import PermanentSendError

_TAG_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


class ResendSender(Sender):
    name = "resend"
    batch_size = 100

    def __init__(self, api_key: str, client: httpx.Client) -> None:
        self.api_key = api_key
        self.client = client

    def payload(self, message: Message) -> dict[str, Any]:
        item: dict[str, Any] = {
            "from": message.from_addr,
            "to": [message.to_header],
            "subject": message.subject,
            "html": json_body(message, "html"),
            "text": json_body(message, "text"),
            "headers": {"Message-ID": message.message_id, **message.headers},
        }
        if message.tag:
            item["tags"] = [{"name": "dispatch", "value": _TAG_UNSAFE.sub("_", message.tag)}]
        return item

    def close(self) -> None:
        self.client.close()

    def send(self, messages: Sequence[Message]) -> list[SendResult]:
        key = hashlib.sha256("\n".join(m.message_id for m in messages).encode()).hexdigest()
        response = post(
            self.client,
            self.name,
            "/emails/batch",
            json=[self.payload(m) for m in messages],
            headers={"Authorization": f"Bearer {self.api_key}", "Idempotency-Key": key},
            idempotent=True,
        )
        body = json_or_empty(response)
        if response.status_code != 200:
            detail = body.get("message", "") if isinstance(body, dict) else ""
            raise error_for(response, self.name, detail, "RESEND_API_KEY")
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list) or len(data) != len(messages):
            raise PermanentSendError("resend: the answer does not list one id per message")
        return [SendResult(m, provider_id=d.get("id")) for m, d in zip(messages, data, strict=True)]
