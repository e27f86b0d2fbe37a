"""The `postmark` sender: Postmark's batch endpoint, up to 500 messages a call.

POST /email/batch with `X-Postmark-Server-Token`; the answer is one result per message, in
order, each with `ErrorCode` (0: accepted) and `MessageID`. Each message carries our Message-ID
as a header and as `Metadata.message_id`, so an unanswered one can be looked up in Postmark's
own record: GET /messages/outbound?recipient=...&metadata_message_id=... (outbound message
search; one metadata field per search, as Postmark documents). Postmark has no idempotency
key, so a repeat of an unanswered batch could send twice: it is looked up instead. How soon an
accepted message shows in the search is not documented; a message not found is taken as never
accepted only ten minutes after its hand-off.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from newsletter.delivery.message import Message
from newsletter.delivery.senders.base import Lookup, Sender, SendResult, UnknownOutcome
from newsletter.delivery.senders.http import (
    accepted_body,
    error_for,
    get,
    json_batch,
    json_bodies,
    json_or_empty,
    post,
    prepare_json,
)
from newsletter.errors import PermanentSendError, SendError, TemporarySendError

#: Postmark ErrorCodes for one message: 406 inactive recipient (it bounced or complained
#: before), 300 invalid address or request. 429 in a result means the account's rate was hit.
INACTIVE_RECIPIENT = 406
ABOUT_RECIPIENT = frozenset({300, INACTIVE_RECIPIENT})
TEMPORARY_CODES = frozenset({429})
MAX_BATCH = 500
RECORD_DELAY = 600.0
METADATA_KEY = "message_id"


class PostmarkSender(Sender):
    name = "postmark"
    batch_size = MAX_BATCH
    can_look_up = True
    record_delay = RECORD_DELAY

    def __init__(
        self,
        token: str,
        client: httpx.Client,
        *,
        stream: str = "broadcast",
        batch_size: int = MAX_BATCH,
    ) -> None:
        self.token = token
        self.client = client
        self.stream = stream
        self.batch_size = max(1, min(batch_size, MAX_BATCH))

    @property
    def _headers(self) -> dict[str, str]:
        return {"X-Postmark-Server-Token": self.token, "Accept": "application/json"}

    def payload(self, message: Message) -> dict[str, Any]:
        html, text = json_bodies(message)
        return {
            "From": message.from_addr,
            "To": message.to_header,
            "Subject": message.subject,
            "HtmlBody": html,
            "TextBody": text,
            "MessageStream": self.stream,
            "Tag": message.tag,
            "Headers": [
                {"Name": "Message-ID", "Value": message.message_id},
                *({"Name": k, "Value": v} for k, v in message.headers.items()),
            ],
            "Metadata": {METADATA_KEY: message.message_id},
        }

    def prepare(self, messages: Sequence[Message]) -> Sequence[Message]:
        return prepare_json(self, messages, self.payload)

    def close(self) -> None:
        self.client.close()

    def send(self, messages: Sequence[Message]) -> list[SendResult]:
        response = post(
            self.client,
            self.name,
            "/email/batch",
            body=json_batch(self, messages, self.payload),
            headers=self._headers,
        )
        if not 200 <= response.status_code < 300:
            body = json_or_empty(response)
            detail = body.get("Message", "") if isinstance(body, dict) else ""
            raise error_for(response, self.name, detail, "POSTMARK_SERVER_TOKEN")
        body = accepted_body(response, self.name)
        if (
            not isinstance(body, list)
            or len(body) != len(messages)
            or not all(isinstance(item, dict) for item in body)
        ):
            raise UnknownOutcome(
                f"postmark: HTTP {response.status_code}, but the answer does not hold one result"
                f" per message ({len(messages)} sent); they may have been accepted"
            )
        return [self._result(m, item) for m, item in zip(messages, body, strict=True)]

    def _result(self, message: Message, item: dict[str, Any]) -> SendResult:
        try:
            code = int(item.get("ErrorCode", -1))
        except (TypeError, ValueError):
            code = -1
        if code == 0:
            return SendResult(message, provider_id=item.get("MessageID"))
        if code == -1:
            error: SendError = UnknownOutcome("postmark: a result without an ErrorCode")
            return SendResult(message, error=error)
        detail = f"postmark: ErrorCode {code}: {item.get('Message', '')}"
        if code in TEMPORARY_CODES:
            return SendResult(message, error=TemporarySendError(detail, throttled=True))
        error = PermanentSendError(
            detail, hard_bounce=code == INACTIVE_RECIPIENT, about_recipient=code in ABOUT_RECIPIENT
        )
        return SendResult(message, error=error)

    def look_up(self, message: Message, handed_at: float) -> Lookup:
        """Outbound message search by recipient and our Message-ID in the metadata."""
        params = {
            "recipient": message.to_addr,
            f"metadata_{METADATA_KEY}": message.message_id,
            "count": "50",
            "offset": "0",
        }
        try:
            response = get(
                self.client, self.name, "/messages/outbound", params=params, headers=self._headers
            )
        except SendError as exc:
            return Lookup(None, detail=str(exc))
        body = json_or_empty(response)
        if response.status_code != 200 or not isinstance(body, dict):
            answered = response.status_code
            return Lookup(None, detail=f"postmark: message search answered HTTP {answered}")
        for found in body.get("Messages") or []:
            metadata = found.get("Metadata") if isinstance(found, dict) else None
            if isinstance(metadata, dict) and metadata.get(METADATA_KEY) == message.message_id:
                return Lookup(True, provider_id=found.get("MessageID"))
        return Lookup(False, detail="postmark: not in the outbound message search")
