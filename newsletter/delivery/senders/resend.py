"""The `resend` sender: Resend's batch endpoint, up to 100 messages a call.

POST /emails/batch with a bearer key, an `Idempotency-Key` made from the messages' ids
(`batch_key`) and `x-batch-validation: permissive`, so an invalid email fails alone (the answer
lists it in `errors` with its index) instead of the whole batch. The answer is
`{"data": [{"id": ...}, ...], "errors": [{"index": 2, "message": ...}]}`, the ids in request
order for the emails that were created.

Resend keeps an idempotency key for 24 hours: the same request (same emails, same key) within
that time gives the original answer and sends nothing again, which is what makes an unanswered
batch safe to repeat (`idempotent`). After 24 hours a repeat would send again, so the delivery
state machine stops repeating after 23 hours and leaves the rows `unknown`. Resend keeps no key
for a request that failed (it checks whether an email with the key was already sent), so the
same key after a 5xx is a fresh attempt. Resend can look an email up only by the id it answered
with (GET /emails/{id}), which an unanswered batch never got: there is no `look_up`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import httpx

from newsletter.delivery.message import Message
from newsletter.delivery.senders.base import Sender, SendResult, UnknownOutcome, batch_key
from newsletter.delivery.senders.http import (
    accepted_body,
    error_for,
    json_batch,
    json_bodies,
    json_or_empty,
    post,
    prepare_json,
)
from newsletter.errors import PermanentSendError, SendError

_TAG_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
#: Resend's documented limit, and how long it honours an idempotency key (less an hour's margin)
MAX_BATCH = 100
KEY_WINDOW = 23 * 3600.0


class ResendSender(Sender):
    name = "resend"
    batch_size = MAX_BATCH
    idempotent = True
    idempotency_window = KEY_WINDOW

    def __init__(self, api_key: str, client: httpx.Client, *, batch_size: int = MAX_BATCH) -> None:
        self.api_key = api_key
        self.client = client
        self.batch_size = max(1, min(batch_size, MAX_BATCH))

    def payload(self, message: Message) -> dict[str, Any]:
        html, text = json_bodies(message)
        item: dict[str, Any] = {
            "from": message.from_addr,
            "to": [message.to_header],
            "subject": message.subject,
            "html": html,
            "text": text,
            "headers": {"Message-ID": message.message_id, **message.headers},
        }
        if message.tag:
            item["tags"] = [{"name": "dispatch", "value": _TAG_UNSAFE.sub("_", message.tag)}]
        return item

    def prepare(self, messages: Sequence[Message]) -> Sequence[Message]:
        return prepare_json(self, messages, self.payload)

    def close(self) -> None:
        self.client.close()

    def send(self, messages: Sequence[Message]) -> list[SendResult]:
        response = post(
            self.client,
            self.name,
            "/emails/batch",
            body=json_batch(self, messages, self.payload),
            headers={
                "Authorization": f"Bearer {self.api_key}",
                "Idempotency-Key": batch_key(messages),
                "x-batch-validation": "permissive",
            },
        )
        if not 200 <= response.status_code < 300:
            raise self._refusal(response)
        body = accepted_body(response, self.name)
        data = body.get("data") if isinstance(body, dict) else None
        errors = body.get("errors") if isinstance(body, dict) else None
        refused = _refused(errors or [], len(messages))
        created = [i for i in range(len(messages)) if refused is not None and i not in refused]
        if (
            not isinstance(data, list)
            or refused is None
            or len(data) != len(created)
            or not all(isinstance(d, dict) for d in data)
        ):
            raise UnknownOutcome(
                f"resend: HTTP {response.status_code}, but the answer does not list one id per"
                " email; they may have been accepted"
            )
        results: list[SendResult | None] = [None] * len(messages)
        for index, item in zip(created, data, strict=True):
            results[index] = SendResult(messages[index], provider_id=item.get("id"))
        for index, why in refused.items():
            error = PermanentSendError(f"resend: {why}", about_recipient=True)
            results[index] = SendResult(messages[index], error=error)
        return [r for r in results if r is not None]

    def _refusal(self, response: httpx.Response) -> SendError:
        body = json_or_empty(response)
        detail = str(body.get("message", "")) if isinstance(body, dict) else ""
        name = body.get("name") if isinstance(body, dict) else None
        if response.status_code == 409 and name in (
            "concurrent_idempotent_requests",
            "invalid_idempotent_request",
        ):
            # the key is known: a request with it is in progress or was processed, so the
            # messages may have gone out; only the same request, later, can tell
            return UnknownOutcome(f"resend: HTTP 409 {name}: {detail}")
        return error_for(response, self.name, detail, "RESEND_API_KEY")


def _refused(errors: Any, count: int) -> dict[int, str] | None:
    """The emails permissive validation refused, by index; None when the list is malformed."""
    if not isinstance(errors, list):
        return None
    found: dict[int, str] = {}
    for item in errors:
        index = item.get("index") if isinstance(item, dict) else None
        if not isinstance(index, int) or not 0 <= index < count:
            return None
        found[index] = str(item.get("message", "refused"))
    return found
