"""The `postmark` sender: Postmark's batch endpoint, up to 500 messages a call.

POST /email/batch with `X-Postmark-Server-Token`; the answer is one result per message, in
order, each with `ErrorCode` (0: accepted) and `MessageID`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from newsletter.delivery.message import Message
from newsletter.delivery.senders.base import Sender, SendResult
from newsletter.delivery.senders.http import error_for, json_body, json_or_empty, post
from newsletter.errors import PermanentSendError, TemporarySendError

#: Postmark ErrorCodes for one message: 406 inactive recipient (it bounced or complained
#: before), 300 invalid address. 429 in a result means the account's rate was hit.
INACTIVE_RECIPIENT = 406
TEMPORARY_CODES = frozenset({429})


class PostmarkSender(Sender):
    name = "postmark"
    batch_size = 500

    def __init__(self, token: str, client: httpx.Client, *, stream: str = "broadcast") -> None:
        self.token = token
        self.client = client
        self.stream = stream

    def payload(self, message: Message) -> dict[str, Any]:
        return {
            "From": message.from_addr,
            "To": message.to_header,
            "Subject": message.subject,
            "HtmlBody": json_body(message, "html"),
            "TextBody": json_body(message, "text"),
            "MessageStream": self.stream,
            "Tag": message.tag,
            "Headers": [
                {"Name": "Message-ID", "Value": message.message_id},
                *({"Name": k, "Value": v} for k, v in message.headers.items()),
            ],
            "Metadata": {"message_id": message.message_id},
        }

    def close(self) -> None:
        self.client.close()

    def send(self, messages: Sequence[Message]) -> list[SendResult]:
        response = post(
            self.client,
            self.name,
            "/email/batch",
            json=[self.payload(m) for m in messages],
            headers={"X-Postmark-Server-Token": self.token, "Accept": "application/json"},
        )
        body = json_or_empty(response)
        if response.status_code != 200 or not isinstance(body, list):
            detail = body.get("Message", "") if isinstance(body, dict) else ""
            raise error_for(response, self.name, detail, "POSTMARK_SERVER_TOKEN")
        if len(body) != len(messages):
            raise PermanentSendError(
                f"postmark: {len(body)} results for {len(messages)} messages; cannot match them"
            )
        return [self._result(m, item) for m, item in zip(messages, body, strict=True)]

    def _result(self, message: Message, item: dict[str, Any]) -> SendResult:
        code = int(item.get("ErrorCode", -1))
        if code == 0:
            return SendResult(message, provider_id=item.get("MessageID"))
        detail = f"postmark: ErrorCode {code}: {item.get('Message', '')}"
        if code in TEMPORARY_CODES:
            return SendResult(message, error=TemporarySendError(detail))
        hard = code == INACTIVE_RECIPIENT
        return SendResult(message, error=PermanentSendError(detail, hard_bounce=hard))
