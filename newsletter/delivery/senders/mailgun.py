"""The `mailgun` sender: one message per call to POST /v3/<domain>/messages.

Per-message calls keep each reader's List-Unsubscribe header their own (recipient variables
reach the body, not headers); concurrency supplies the throughput. Basic auth `api:<key>`; the
answer is `{"id": "<...>", "message": "Queued. Thank you."}`: the 200 alone says it was queued.

Mailgun keeps the Message-Id we give (`h:Message-Id`) as the message's own id, so an unanswered
message can be looked up in its event log: GET /v3/<domain>/events?message-id=<id> (without the
angle brackets) finds an `accepted` event. Mailgun documents that events reach that log out of
order and late, and advises trusting a page only once its events are half an hour old: a message
not found is taken as never accepted 30 minutes after its hand-off. There is no idempotency key.
"""

from __future__ import annotations

from collections.abc import Sequence

import httpx

from newsletter.delivery.message import Message
from newsletter.delivery.senders.base import Lookup, Sender, SendResult, send_each
from newsletter.delivery.senders.http import error_for, get, json_or_empty, post
from newsletter.errors import SendError

RECORD_DELAY = 1800.0


class MailgunSender(Sender):
    name = "mailgun"
    batch_size = 1
    can_look_up = True
    record_delay = RECORD_DELAY

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
        return send_each(messages, self._send_one)

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
        found = body.get("id") if isinstance(body, dict) else None
        return found if isinstance(found, str) and found else message.message_id

    def look_up(self, message: Message, handed_at: float) -> Lookup:
        """The events API filtered by our Message-Id, from a minute before the hand-off."""
        params = {
            "message-id": message.message_id.strip("<>"),
            "begin": str(int(handed_at) - 60),
            "ascending": "yes",
            "limit": "300",
        }
        try:
            response = get(
                self.client, self.name, f"/v3/{self.domain}/events", params=params, auth=self.auth
            )
        except SendError as exc:
            return Lookup(None, detail=str(exc))
        body = json_or_empty(response)
        if response.status_code != 200 or not isinstance(body, dict):
            return Lookup(None, detail=f"mailgun: events answered HTTP {response.status_code}")
        events = [e for e in body.get("items") or [] if isinstance(e, dict)]
        wanted = message.message_id.strip("<>")
        for event in events:
            headers = (event.get("message") or {}).get("headers") or {}
            if event.get("event") == "accepted" and headers.get("message-id") == wanted:
                return Lookup(True, provider_id=message.message_id)
        return Lookup(False, detail="mailgun: no accepted event for this Message-Id")
