"""HTTP stubs of the email APIs on 127.0.0.1, speaking the request and answer shapes each
provider documents (no tests here). Each keeps what it accepted, so a test can count per
recipient what the provider got against what we recorded, and takes injected faults.

- Postmark: POST /email/batch (one result per message: ErrorCode 0, or 300 for an invalid
  To); GET /messages/outbound?recipient=&metadata_<key>=&count=&offset= (outbound message
  search: {"TotalCount", "Messages": [{"MessageID", "Recipients", "Metadata", ...}]}).
- Resend: POST /emails/batch with Idempotency-Key (a repeat of the same request within the
  key's life answers the original answer and sends nothing; the same key with another payload
  is 409 invalid_idempotent_request; one still in progress 409 concurrent_idempotent_requests)
  and x-batch-validation (strict: 422 for the whole batch; permissive: `errors` with indexes);
  GET /emails/{id}.
- Mailgun: POST /v3/<domain>/messages (form; keeps h:Message-Id as the id); GET
  /v3/<domain>/events?message-id=<id without brackets> ({"items": [{"event": "accepted",
  "message": {"headers": {"message-id": ...}}}], "paging": {...}}).
- SendGrid: POST /v3/mail/send: 202 with X-Message-Id; 400 {"errors": [{"field":
  "personalizations.N.to.0.email", ...}]} for an invalid address.

Faults: `fault(request) -> str | None` may answer "500", "429", "garbage" (a 200 whose body does
not parse), "drop" (take the request, then close the connection without an answer), "hang"
(take it and answer only after `hang_for` seconds), "refuse" (close before taking it).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parseaddr
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

ADDRESS = re.compile(r"^[^@\s<>\"]+@[^@\s<>\"]+\.[A-Za-z]{2,}$")


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Accepted:
    recipient: str
    message_id: str  # our Message-ID, as sent
    provider_id: str
    at: float
    metadata: dict[str, str] = field(default_factory=dict)


class Provider:
    """State and behaviour of one provider; subclasses answer its endpoints."""

    name = "provider"

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.accepted: list[Accepted] = []
        self.requests: list[Request] = []
        self.fault: Callable[[Request], str | None] | None = None
        self.hang_for = 5.0
        self.delay = 0.0  # seconds every send request takes (keeps a run going to kill it)

    def recipients(self) -> Counter[str]:
        with self.lock:
            return Counter(a.recipient for a in self.accepted)

    def sends(self, request: Request) -> bool:
        return request.method == "POST"

    def take(self, request: Request) -> tuple[int, dict[str, str], bytes]:
        raise NotImplementedError

    def _accept(
        self, recipient: str, message_id: str, metadata: dict[str, str] | None = None
    ) -> str:
        provider_id = str(uuid.uuid4())
        with self.lock:
            self.accepted.append(
                Accepted(recipient, message_id, provider_id, time.time(), metadata or {})
            )
        return provider_id

    def env(self, url: str) -> dict[str, str]:
        raise NotImplementedError


def _json(status: int, value: Any, **headers: str) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/json", **headers}, json.dumps(value).encode()


class Postmark(Provider):
    name = "postmark"
    TOKEN = "pm-server-token"

    def env(self, url: str) -> dict[str, str]:
        return {
            "NEWSLETTER_SENDER": "postmark",
            "POSTMARK_SERVER_TOKEN": self.TOKEN,
            "NEWSLETTER_POSTMARK_API_URL": url,
        }

    def take(self, request: Request) -> tuple[int, dict[str, str], bytes]:
        if request.headers.get("x-postmark-server-token") != self.TOKEN:
            return _json(
                401, {"ErrorCode": 10, "Message": "Request does not contain a valid Server token."}
            )
        if request.method == "GET" and request.path == "/messages/outbound":
            return self._search(request)
        if request.method != "POST" or request.path != "/email/batch":
            return _json(404, {"ErrorCode": 404, "Message": "not found"})
        messages = request.json()
        if not isinstance(messages, list) or len(messages) > 500:
            return _json(422, {"ErrorCode": 300, "Message": "Invalid email request"})
        results = []
        for message in messages:
            to = parseaddr(message.get("To", ""))[1]
            if not ADDRESS.match(to):
                results.append(
                    {"ErrorCode": 300, "Message": f"Invalid 'To' address: '{to}'.", "To": to}
                )
                continue
            metadata = message.get("Metadata") or {}
            headers = {h["Name"]: h["Value"] for h in message.get("Headers", [])}
            provider_id = self._accept(to, headers.get("Message-ID", ""), metadata)
            results.append(
                {
                    "ErrorCode": 0,
                    "Message": "OK",
                    "MessageID": provider_id,
                    "SubmittedAt": "2026-06-15T07:00:00.0000000-04:00",
                    "To": message.get("To"),
                }
            )
        return _json(200, results)

    def _search(self, request: Request) -> tuple[int, dict[str, str], bytes]:
        if "count" not in request.query or "offset" not in request.query:
            return _json(422, {"ErrorCode": 605, "Message": "count and offset are required"})
        recipient = request.query.get("recipient", [None])[0]
        wanted = {
            key.removeprefix("metadata_"): values[0]
            for key, values in request.query.items()
            if key.startswith("metadata_")
        }
        with self.lock:
            found = [
                a
                for a in self.accepted
                if (recipient is None or a.recipient == recipient)
                and all(a.metadata.get(k) == v for k, v in wanted.items())
            ]
        messages = [
            {
                "Tag": "",
                "MessageID": a.provider_id,
                "To": [{"Email": a.recipient, "Name": None}],
                "Recipients": [a.recipient],
                "ReceivedAt": "2026-06-15T07:00:00-04:00",
                "Status": "Sent",
                "Metadata": a.metadata,
                "MessageStream": "broadcast",
            }
            for a in found
        ]
        return _json(200, {"TotalCount": len(messages), "Messages": messages})


class Resend(Provider):
    name = "resend"
    KEY = "re_test_key"

    def __init__(self) -> None:
        super().__init__()
        self.keys: dict[str, tuple[str, tuple[int, dict[str, str], bytes] | None]] = {}
        self.emails: dict[str, dict[str, Any]] = {}

    def env(self, url: str) -> dict[str, str]:
        return {
            "NEWSLETTER_SENDER": "resend",
            "RESEND_API_KEY": self.KEY,
            "NEWSLETTER_RESEND_API_URL": url,
        }

    def take(self, request: Request) -> tuple[int, dict[str, str], bytes]:
        if request.headers.get("authorization") != f"Bearer {self.KEY}":
            return _json(
                403, {"statusCode": 403, "name": "invalid_api_key", "message": "API key is invalid"}
            )
        found = re.fullmatch(r"/emails/([\w-]+)", request.path)
        if request.method == "GET" and found:
            email = self.emails.get(found.group(1))
            if email is None:
                return _json(
                    404, {"statusCode": 404, "name": "not_found", "message": "Email not found"}
                )
            return _json(200, email)
        if request.method != "POST" or request.path != "/emails/batch":
            return _json(404, {"statusCode": 404, "name": "not_found", "message": "not found"})
        key = request.headers.get("idempotency-key")
        digest = hashlib.sha256(request.body).hexdigest()
        if key is not None:
            with self.lock:
                known = self.keys.get(key)
                if known is None:
                    self.keys[key] = (digest, None)  # in progress
            if known is not None:
                seen, answer = known
                if seen != digest:
                    return _json(
                        409,
                        {
                            "statusCode": 409,
                            "name": "invalid_idempotent_request",
                            "message": "Same idempotency key used with a different request"
                            " payload.",
                        },
                    )
                if answer is None:
                    return _json(
                        409,
                        {
                            "statusCode": 409,
                            "name": "concurrent_idempotent_requests",
                            "message": "Same idempotency key used while original request is"
                            " still in progress.",
                        },
                    )
                return answer
        answer = self._batch(request)
        if key is not None:
            with self.lock:
                if 200 <= answer[0] < 300:
                    self.keys[key] = (digest, answer)  # kept: a repeat answers this again
                else:
                    self.keys.pop(key, None)  # nothing sent: the key is not kept
        return answer

    def _batch(self, request: Request) -> tuple[int, dict[str, str], bytes]:
        emails = request.json()
        if not isinstance(emails, list) or len(emails) > 100:
            return _json(
                422, {"statusCode": 422, "name": "validation_error", "message": "batch of 1 to 100"}
            )
        permissive = request.headers.get("x-batch-validation") == "permissive"
        invalid = {}
        for index, email in enumerate(emails):
            to = parseaddr((email.get("to") or [""])[0])[1]
            if not ADDRESS.match(to):
                invalid[index] = (
                    "Invalid `to` field. The email address needs to follow the"
                    f" `email@example.com` format. ({to})"
                )
        if invalid and not permissive:
            first = next(iter(invalid.values()))
            return _json(422, {"statusCode": 422, "name": "validation_error", "message": first})
        data = []
        for index, email in enumerate(emails):
            if index in invalid:
                continue
            to = parseaddr(email["to"][0])[1]
            email_id = self._accept(to, (email.get("headers") or {}).get("Message-ID", ""))
            self.emails[email_id] = {
                "object": "email",
                "id": email_id,
                "to": [to],
                "from": email.get("from"),
                "subject": email.get("subject"),
                "last_event": "delivered",
                "created_at": "2026-06-15 07:00:00.000000+00",
            }
            data.append({"id": email_id})
        body: dict[str, Any] = {"data": data}
        if permissive:
            body["errors"] = [{"index": i, "message": m} for i, m in invalid.items()]
        return _json(200, body)


class Mailgun(Provider):
    name = "mailgun"
    KEY = "key-mailgun-test"
    DOMAIN = "mg.example.org"

    def env(self, url: str) -> dict[str, str]:
        return {
            "NEWSLETTER_SENDER": "mailgun",
            "MAILGUN_API_KEY": self.KEY,
            "MAILGUN_DOMAIN": self.DOMAIN,
            "NEWSLETTER_MAILGUN_API_URL": url,
        }

    def take(self, request: Request) -> tuple[int, dict[str, str], bytes]:
        import base64

        expected = "Basic " + base64.b64encode(f"api:{self.KEY}".encode()).decode()
        if request.headers.get("authorization") != expected:
            return 401, {"Content-Type": "text/plain"}, b"Forbidden"
        if request.method == "GET" and request.path == f"/v3/{self.DOMAIN}/events":
            return self._events(request)
        if request.method != "POST" or request.path != f"/v3/{self.DOMAIN}/messages":
            return _json(404, {"message": "not found"})
        form = {k: v[0] for k, v in parse_qs(request.body.decode()).items()}
        to = parseaddr(form.get("to", ""))[1]
        if not ADDRESS.match(to):
            return _json(
                400, {"message": "to parameter is not a valid address. please check documentation"}
            )
        message_id = form.get("h:Message-Id") or f"<{uuid.uuid4().hex}@{self.DOMAIN}>"
        with self.lock:
            self.accepted.append(Accepted(to, message_id, message_id, time.time()))
        return _json(200, {"id": message_id, "message": "Queued. Thank you."})

    def _events(self, request: Request) -> tuple[int, dict[str, str], bytes]:
        wanted = request.query.get("message-id", [""])[0]
        with self.lock:
            found = [a for a in self.accepted if a.message_id.strip("<>") == wanted]
        items = [
            {
                "event": "accepted",
                "id": uuid.uuid4().hex,
                "timestamp": a.at,
                "recipient": a.recipient,
                "message": {"headers": {"message-id": a.message_id.strip("<>"), "to": a.recipient}},
            }
            for a in found
        ]
        base = f"https://api.mailgun.net/v3/{self.DOMAIN}/events/"
        paging = {k: base + k for k in ("first", "last", "next", "previous")}
        return _json(200, {"items": items, "paging": paging})


class SendGrid(Provider):
    name = "sendgrid"
    KEY = "SG.test-key"

    def env(self, url: str) -> dict[str, str]:
        return {
            "NEWSLETTER_SENDER": "sendgrid",
            "SENDGRID_API_KEY": self.KEY,
            "NEWSLETTER_SENDGRID_API_URL": url,
        }

    def take(self, request: Request) -> tuple[int, dict[str, str], bytes]:
        if request.headers.get("authorization") != f"Bearer {self.KEY}":
            return _json(
                401,
                {
                    "errors": [
                        {
                            "field": None,
                            "message": "The provided authorization grant is invalid, expired,"
                            " or revoked",
                            "help": None,
                        }
                    ]
                },
            )
        if request.method != "POST" or request.path != "/v3/mail/send":
            return _json(404, {"errors": [{"message": "not found"}]})
        body = request.json()
        errors = []
        for n, item in enumerate(body.get("personalizations", [])):
            for m, to in enumerate(item.get("to", [])):
                if not ADDRESS.match(to.get("email", "")):
                    errors.append(
                        {
                            "message": "Does not contain a valid address.",
                            "field": f"personalizations.{n}.to.{m}.email",
                            "help": "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html#message.personalizations.to",
                        }
                    )
        if errors:
            return _json(400, {"errors": errors})
        batch_id = uuid.uuid4().hex[:22]
        for item in body["personalizations"]:
            self._accept(item["to"][0]["email"], item.get("headers", {}).get("Message-ID", ""))
        return 202, {"X-Message-Id": batch_id}, b""


class StubServer:
    """One provider behind a threaded HTTP/1.1 server on 127.0.0.1."""

    def __init__(self, provider: Provider) -> None:
        self.provider = provider
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if len(body) < length:
                    return  # the client went away mid-request: nothing was taken
                parts = urlsplit(self.path)
                request = Request(
                    self.command,
                    parts.path,
                    parse_qs(parts.query),
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                )
                outer.answer(self, request)

            do_GET = _handle
            do_POST = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def answer(self, handler: BaseHTTPRequestHandler, request: Request) -> None:
        provider = self.provider
        with provider.lock:
            provider.requests.append(request)
        fault = provider.fault(request) if provider.fault else None
        if fault == "refuse":
            handler.close_connection = True
            handler.connection.close()
            return
        if fault in ("500", "429"):
            status = int(fault)
            headers = {"Retry-After": "1"} if status == 429 else {}
            self._send(
                handler,
                *_json(
                    status,
                    {
                        "message": "try later",
                        "Message": "try later",
                        "statusCode": status,
                        "name": "internal_server_error",
                    },
                    **headers,
                ),
            )
            return
        answer = provider.take(request)
        if provider.delay and provider.sends(request):
            time.sleep(provider.delay)
        if fault == "drop":
            handler.close_connection = True
            handler.connection.close()
            return
        if fault == "hang":
            time.sleep(provider.hang_for)
        if fault == "garbage":
            answer = (
                200,
                {"Content-Type": "application/json"},
                b'{"data": [{"id": "x"' + b"\x00<html>oops",
            )
        self._send(handler, *answer)

    def _send(
        self, handler: BaseHTTPRequestHandler, status: int, headers: dict[str, str], body: bytes
    ) -> None:
        try:
            handler.send_response(status)
            for name, value in headers.items():
                handler.send_header(name, value)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
        except OSError:
            handler.close_connection = True  # the client is gone (killed): the work stands

    def __enter__(self) -> StubServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)

    def env(self) -> dict[str, str]:
        return self.provider.env(self.url)


PROVIDERS: dict[str, type[Provider]] = {
    cls.name: cls for cls in (Postmark, Resend, Mailgun, SendGrid)
}
