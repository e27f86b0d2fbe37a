"""A stub of Amazon SES API v2 on 127.0.0.1 (no tests here), in the shapes SES documents.

`POST /v2/email/outbound-emails` takes `{"FromEmailAddress", "Destination": {"ToAddresses"},
"Content": {"Raw": {"Data": base64}}, "ConfigurationSetName"?}` and answers
`{"MessageId": ...}`; errors are rest-json: `x-amzn-ErrorType: Code:...` and
`{"message": ...}`. Every request's SigV4 signature is checked here with a second, independent
implementation (hashlib/hmac, not botocore), so what the sender signs is what goes over the
wire. Faults are injected per request by `reply(recipient, body)`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ACCESS_KEY = "AKIDSTUB0000EXAMPLE"
SECRET_KEY = "stub/secret+key/0123456789abcdefEXAMPLE"
REGION = "eu-west-1"
AUTHORIZATION = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[A-Z0-9]+)/(?P<date>\d{8})/(?P<region>[a-z0-9-]+)"
    r"/(?P<service>[a-z0-9]+)/aws4_request, SignedHeaders=(?P<signed>[a-z0-9-]+(?:;[a-z0-9-]+)*)"
    r", Signature=(?P<signature>[0-9a-f]{64})$"
)


@dataclass
class Reply:
    """What the stub answers instead of accepting: a status, an error code and text; or
    `drop` (read it all, accept it, close without answering: a lost answer), or `hang`
    (accept it and answer after `hang` seconds)."""

    status: int = 200
    code: str = ""
    message: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    raw_body: bytes | None = None
    drop: bool = False
    hang: float = 0.0


@dataclass
class Received:
    recipient: str
    body: dict[str, Any]
    headers: dict[str, str]
    raw: bytes
    message_id: str

    def parsed(self) -> EmailMessage:
        return message_from_bytes(self.raw, policy=policy.default)  # type: ignore[return-value]


def _sign(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def signature_problem(
    method: str, path: str, headers: dict[str, str], body: bytes, secret: str
) -> str | None:
    """Why the request's SigV4 signature is wrong, or None when it verifies."""
    match = AUTHORIZATION.match(headers.get("authorization", ""))
    if not match:
        return f"malformed Authorization header: {headers.get('authorization')!r}"
    amz_date = headers.get("x-amz-date", "")
    if not amz_date.startswith(match["date"]):
        return "X-Amz-Date does not match the credential scope's date"
    signed = match["signed"].split(";")
    missing = {"host", "x-amz-date", "content-type"} - set(signed)
    if missing:
        return f"not signed: {sorted(missing)}"
    canonical = "\n".join(
        [
            method,
            path,
            "",
            "".join(f"{name}:{' '.join(headers.get(name, '').split())}\n" for name in signed),
            match["signed"],
            hashlib.sha256(body).hexdigest(),
        ]
    )
    scope = f"{match['date']}/{match['region']}/{match['service']}/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = _sign(("AWS4" + secret).encode(), match["date"])
    for part in (match["region"], match["service"], "aws4_request"):
        key = _sign(key, part)
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return None if hmac.compare_digest(expected, match["signature"]) else "signature mismatch"


class SesStub:
    def __init__(
        self,
        *,
        reply: Callable[[str, dict[str, Any]], Reply | None] | None = None,
        delay: float = 0.0,
        secret: str = SECRET_KEY,
    ) -> None:
        self.reply = reply
        self.delay = delay
        self.secret = secret
        self.received: list[Received] = []
        self.requests: list[dict[str, str]] = []  # every request's headers, accepted or not
        self.lock = threading.Lock()
        self._count = 0
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                stub.handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,))

    def __enter__(self) -> SesStub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)

    def env(self, **extra: str) -> dict[str, str]:
        return {
            "NEWSLETTER_SENDER": "ses",
            "NEWSLETTER_SES_API_URL": self.url,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": REGION,
            **extra,
        }

    def recipients(self) -> Counter[str]:
        with self.lock:
            return Counter(r.recipient for r in self.received)

    # -- one request -----------------------------------------------------------------------

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        body = h.rfile.read(int(h.headers.get("Content-Length", "0")))
        headers = {k.lower(): v for k, v in h.headers.items()}
        with self.lock:
            self.requests.append(headers)
        if h.path != "/v2/email/outbound-emails":
            self._answer(h, 404, {"message": f"no route {h.path}"}, "NotFoundException")
            return
        problem = signature_problem("POST", h.path, headers, body, self.secret)
        if problem:
            self._answer(h, 403, {"message": problem}, "InvalidSignatureException")
            return
        try:
            payload = json.loads(body)
            recipient = payload["Destination"]["ToAddresses"][0]
            raw = base64.b64decode(payload["Content"]["Raw"]["Data"], validate=True)
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            self._answer(h, 400, {"message": f"bad request: {exc}"}, "BadRequestException")
            return
        if self.delay:
            time.sleep(self.delay)
        reply = self.reply(recipient, payload) if self.reply else None
        if reply is not None and reply.status != 200 and not (reply.drop or reply.hang):
            if reply.raw_body is not None:
                self._send(h, reply.status, reply.raw_body, reply.headers)
            else:
                self._answer(h, reply.status, {"message": reply.message}, reply.code, reply.headers)
            return
        with self.lock:
            self._count += 1
            message_id = f"0102018c{self._count:08x}-stub-{self._count:06d}-000000"
            self.received.append(Received(recipient, payload, headers, raw, message_id))
        if reply is not None and reply.drop:
            h.close_connection = True
            h.connection.close()
            return
        if reply is not None and reply.hang:
            time.sleep(reply.hang)
        if reply is not None and reply.raw_body is not None:
            self._send(h, 200, reply.raw_body, reply.headers)
            return
        self._answer(h, 200, {"MessageId": message_id})

    def _answer(
        self,
        h: BaseHTTPRequestHandler,
        status: int,
        payload: dict[str, Any],
        code: str = "",
        headers: dict[str, str] | None = None,
    ) -> None:
        extra = dict(headers or {})
        if code:
            extra["x-amzn-ErrorType"] = (
                f"{code}:http://internal.amazon.com/coral/com.amazonaws.sesv2/"
            )
        self._send(h, status, json.dumps(payload).encode(), extra)

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, status: int, data: bytes, headers: dict[str, str]) -> None:
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("x-amzn-RequestId", "00000000-0000-4000-8000-000000000000")
        for name, value in headers.items():
            h.send_header(name, value)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)
