"""The `mailgun` sender: one message per call to POST /v3/<domain>/messages.

Per-message calls keep each reader's List-Unsubscribe header their own (recipient variables
reach the body, not headers); concurrency supplies the throughput. Basic auth `api:<key>`; the
answer is `{"id": "<...>", "message": "Queued. Thank you."}`.
"""

from __future__ import annotations

from collections.abc import Sequence

import httpx

from newsletter.delivery.message import Message
from newsletter.delivery.senders.base import Sender, SenderUnavailable, SendResult
from newsletter.delivery.senders.http import error_for, json_or_empty, post
from newsletter.errors import SendError


class MailgunSender(Sender):
    name = "mailgun"
    batch_size = 1

    def __init__(self, api_key: str, domain: str, client: httpx.Client) -> None:
        self.auth = httpx.BasicAuth("api", api_key)
        self.domain = domain
        self.client = client

    def form(self, message: Message) -> dict[str, str]:
        fields = {
            "from": message.from_addr,
            "to": message.to_header,
            "subject": message.subject,
            "text": message.text,
            "html": message.html,
            "h:Message-Id": message.message_id,
            **{f"h:{name}": value for name, value in message.headers.items()},
        }
        if message.tag:
            fields["o:tag"] = message.tag
        return fields

    def close(self) -> None:
        self.client.close()

    def send(self, messages: Sequence[Message]) -> list[SendResult]:
        results = []
        for message in messages:
            try:
                results.append(SendResult(message, provider_id=self._send_one(message)))
            except SenderUnavailable:
                raise
            except SendError as exc:
                if len(messages) == 1:
                    raise
                results.append(SendResult(message, error=exc))
        return results

    def _send_one(self, message: Message) -> str | None:
        response = post(
            self.client,
            self.name,
            f"/v3/{self.domain}/messages",
            data=self.form(message),
            auth=self.auth,
        )
        body = json_or_empty(response)
        if response.status_code != 200:
            detail = body.get("message", "") if isinstance(body, dict) else ""
            raise error_for(response, self.name, detail, "MAILGUN_API_KEY and MAILGUN_DOMAIN")
        return body.get("id") if isinstance(body, dict) else None
