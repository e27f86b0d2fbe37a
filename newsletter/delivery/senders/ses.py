"""The `ses` sender: Amazon SES API v2 `SendEmail`, one raw MIME message a call.

POST /v2/email/outbound-emails, signed with SigV4 (service `ses`), with `Content.Raw.Data`
our own message bytes in base64, so the List-Unsubscribe and one-click headers (and our DKIM
signature, when a key is set) go out exactly as built; `FromEmailAddress`,
`Destination.ToAddresses` and an optional `ConfigurationSetName`. The answer is
`{"MessageId": ...}`; errors are rest-json: the code in the `x-amzn-ErrorType` header (or
`__type`), the text in `message`.

What SES cannot give the delivery accounting: SendEmail takes no idempotency key, so a call
whose answer was lost (a read timeout, a dropped connection) may have been sent and is an
unknown outcome, never retried on its own; and SES has no lookup of a sent message by our
Message-ID (it assigns its own; its events reach SNS or EventBridge), so an unknown cannot be
settled by asking it.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from email.utils import parseaddr
from typing import Any

import httpx
import msgspec

from newsletter.delivery.dkim import DkimSigner
from newsletter.delivery.message import Message
from newsletter.delivery.senders.base import (
    Sender,
    SenderUnavailable,
    SendResult,
    UnknownOutcome,
    send_each,
)
from newsletter.delivery.senders.http import json_or_empty, post, retry_after
from newsletter.delivery.senders.sigv4 import SigV4
from newsletter.errors import PermanentSendError, SendError, TemporarySendError

PATH = "/v2/email/outbound-emails"
CREDENTIALS = "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN"
#: SES rewrites these two: a DKIM signature over them would not survive (SES's own advice)
REWRITTEN = ("message-id", "date")

#: throttling and sending quotas ("Maximum sending rate exceeded", "Daily message quota
#: exceeded"): wait and try again
TEMPORARY = frozenset(
    {"TooManyRequestsException", "LimitExceededException", "Throttling", "ThrottlingException"}
)
#: the account or its set-up refuses every message: stop, naming what to fix
UNAVAILABLE = {
    "AccountSuspendedException": "the SES account may no longer send (suspended)",
    "SendingPausedException": (
        "sending is paused for this account or NEWSLETTER_SES_CONFIGURATION_SET;"
        " resume it in SES first"
    ),
    "MailFromDomainNotVerifiedException": (
        "the MAIL FROM domain of NEWSLETTER_FROM is not verified in SES (AWS_REGION)"
    ),
    "NotFoundException": (
        "SES does not know NEWSLETTER_SES_CONFIGURATION_SET (or the identity) in AWS_REGION"
    ),
}
#: the request was not accepted as signed: wrong, expired or unauthorised credentials
AUTH = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "IncompleteSignature",
        "InvalidClientTokenId",
        "ExpiredTokenException",
        "AccessDeniedException",
        "MissingAuthenticationTokenException",
    }
)


def endpoint(region: str) -> str:
    return f"https://email.{region}.amazonaws.com"


class SesSender(Sender):
    name = "ses"
    batch_size = 1

    def __init__(
        self,
        client: httpx.Client,
        signer: SigV4,
        *,
        configuration_set: str = "",
        dkim: DkimSigner | None = None,
    ) -> None:
        self.client = client
        self.signer = signer
        self.configuration_set = configuration_set
        self.dkim = dkim.without(*REWRITTEN) if dkim else None
        self.url = str(client.base_url).rstrip("/") + PATH

    def close(self) -> None:
        self.client.close()

    def send(self, messages: Sequence[Message]) -> list[SendResult]:
        return send_each(messages, self._send_one)

    def payload(self, message: Message) -> dict[str, Any]:
        raw = message.as_bytes()
        if self.dkim is not None:
            raw = self.dkim.sign(raw)
        body: dict[str, Any] = {
            # bare addresses, IDNA domains: the names travel in the message's own headers
            "FromEmailAddress": ascii_address(parseaddr(message.from_addr)[1]),
            "Destination": {"ToAddresses": [ascii_address(message.to_addr)]},
            "Content": {"Raw": {"Data": base64.b64encode(raw).decode("ascii")}},
        }
        if self.configuration_set:
            body["ConfigurationSetName"] = self.configuration_set
        return body

    def _send_one(self, message: Message) -> str:
        try:
            content = msgspec.json.encode(self.payload(message))
        except SendError as exc:  # a header that cannot be built (CR/LF in a value)
            raise PermanentSendError(str(exc)) from None
        headers = self.signer.headers(
            "POST", self.url, content, {"Content-Type": "application/json"}
        )
        response = post(self.client, self.name, self.url, content=content, headers=headers)
        body = json_or_empty(response)
        if response.status_code == 200:
            message_id = body.get("MessageId") if isinstance(body, dict) else None
            if not isinstance(message_id, str) or not message_id:
                # accepted (200), so it may well go out: recording a failure would invite a
                # second copy
                raise UnknownOutcome("ses: HTTP 200 without a MessageId; it may have been sent")
            return message_id
        raise error_for(response, body, message)


def error_code(response: httpx.Response, body: Any) -> str:
    """The rest-json error code: `x-amzn-ErrorType` ("Code:http://..."), else `__type` or
    `code` in the body ("namespace#Code")."""
    code = response.headers.get("x-amzn-ErrorType", "")
    if not code and isinstance(body, dict):
        code = str(body.get("__type") or body.get("code") or body.get("Code") or "")
    return code.split(":", 1)[0].rsplit("#", 1)[-1].strip()


def error_for(response: httpx.Response, body: Any, message: Message) -> SendError:
    status = response.status_code
    code = error_code(response, body)
    text = ""
    if isinstance(body, dict):
        text = str(body.get("message") or body.get("Message") or "")
    detail = f"ses: HTTP {status} {code}: {text}".strip().rstrip(":")
    if code in TEMPORARY or status == 429:  # a rate or a quota: waited out, not a fault
        return TemporarySendError(detail, retry_after=retry_after(response), throttled=True)
    if code in UNAVAILABLE:
        return SenderUnavailable(f"{detail} ({UNAVAILABLE[code]})")
    if code in AUTH or status in (401, 403):
        return SenderUnavailable(f"{detail} (credentials refused; check {CREDENTIALS})")
    if code == "MessageRejected" and _sender_not_verified(text, message):
        return SenderUnavailable(f"{detail} (verify NEWSLETTER_FROM's address or domain in SES)")
    if status >= 500 or status in (408, 409):
        return TemporarySendError(detail, retry_after=retry_after(response))
    # MessageRejected, BadRequestException and any other 4xx: this message, as it is, never.
    # A rejection names this message (its recipient or content); a malformed request from us
    # would be refused for every reader, so it counts towards the error threshold.
    return PermanentSendError(detail, about_recipient=code == "MessageRejected")


def _sender_not_verified(text: str, message: Message) -> bool:
    """SES's "Email address is not verified. The following identities failed the check":
    about our From address, every message fails alike; about the reader's (an account still
    in the SES sandbox), only theirs does."""
    lowered = text.lower()
    return "not verified" in lowered and parseaddr(message.from_addr)[1].lower() in lowered


def ascii_address(address: str) -> str:
    """The address with its domain in IDNA form, as SES requires (it has no SMTPUTF8)."""
    local, _, domain = address.rpartition("@")
    try:
        return f"{local}@{domain.encode('idna').decode('ascii')}"
    except UnicodeError:
        raise PermanentSendError(f"ses: {address!r}: the domain has no IDNA form") from None
