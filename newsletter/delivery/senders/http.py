"""What the HTTP API senders share: one httpx client, and the mapping of HTTP answers and
transport errors onto our error tree, with Retry-After honoured.

The line that matters: before the request has fully left, a failure is temporary (nothing can
have been accepted); after it, a lost or unreadable answer is `UnknownOutcome` (the provider
may have accepted it). A 2xx is never a failure, whatever its body says.
"""

from __future__ import annotations

import ssl
import time
from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from email.utils import parsedate_to_datetime
from functools import cache
from itertools import accumulate
from typing import Any

import httpx
import msgspec

from newsletter import __version__
from newsletter.delivery.message import Message, MimeTemplate
from newsletter.delivery.senders.base import (
    Prepared,
    RejectedRequest,
    Sender,
    SenderUnavailable,
    UnknownOutcome,
)
from newsletter.errors import PermanentSendError, SendError, TemporarySendError

USER_AGENT = f"newsletter/{__version__}"


def make_client(
    base_url: str, *, timeout: float = 30.0, transport: httpx.BaseTransport | None = None
) -> httpx.Client:
    """One pooled client per sender; a transport can be passed in (tests use MockTransport)."""
    return httpx.Client(
        base_url=base_url,
        timeout=httpx.Timeout(timeout),
        transport=transport,
        verify=_tls_context() if transport is None else True,
        headers={"User-Agent": USER_AGENT},
        limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
    )


@cache
def _tls_context() -> ssl.SSLContext:
    """httpx's default verifying context (the CA bundle, `SSL_CERT_FILE` / `SSL_CERT_DIR`),
    made once: each new one loads the CA bundle again, ~50 ms, and every process of a split send
    makes its own sender (the forked ones inherit this one)."""
    return httpx.create_ssl_context()


_JSON = msgspec.json.Encoder()


class Spliced:
    """A JSON string given as byte pieces (the dispatch's pre-encoded parts and one reader's
    encoded values), joined only into the request body: the ~40 KB of a reader's bodies are
    copied once per request instead of three times (a join, the item, the chunk)."""

    __slots__ = ("pieces",)

    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = pieces

    def __bytes__(self) -> bytes:
        return b"".join(self.pieces)


def json_bodies(message: Message) -> tuple[str | Spliced, str | Spliced]:
    """`message.html` and `message.text` for a JSON payload, from pieces JSON-encoded once per
    dispatch: re-escaping ~60 KB of HTML for every reader was most of an API sender's CPU.

    JSON escapes character by character, so the join equals encoding the whole string. A message
    whose bodies were replaced after composing (or built by hand) is encoded the plain way.
    `encode_json` (and `post(json=...)`) write a `Spliced` value in place.
    """
    fast = message.template_bodies
    if fast is None:
        return message.html, message.text
    html_pieces, html_slots = _encoded_pieces(fast.template, True)
    text_pieces, text_slots = _encoded_pieces(fast.template, False)
    values = [fast.html_values[slot] for slot in html_slots]
    values += [fast.values[slot] for slot in text_slots]
    # one encoding for all of the reader's values: in JSON a quote inside a string is always
    # escaped, so '","' occurs only between two of them
    encoded = _JSON.encode(values)[2:-2].split(b'","') if values else []
    split = len(html_slots)
    return _spliced(html_pieces, encoded[:split]), _spliced(text_pieces, encoded[split:])


def _spliced(pieces: list[bytes], values: list[bytes]) -> Spliced:
    """A JSON string: the quotes, and the dispatch's pieces with the values between them."""
    out: list[bytes] = [b""] * (2 * len(pieces) + 1)
    out[0] = out[-1] = b'"'
    out[1::2] = pieces
    out[2:-2:2] = values
    return Spliced(out)


def _encoded_pieces(template: MimeTemplate, html: bool) -> tuple[list[bytes], tuple[str, ...]]:
    cache = template.__dict__.setdefault("_json_pieces", {})  # one template per dispatch
    if html not in cache:
        parts, slots = template.body_source(html)
        cache[html] = ([_JSON.encode(p)[1:-1] for p in parts], slots)
    return cache[html]


def json_batch(
    sender: Sender, messages: Sequence[Message], payload: Callable[[Message], Any]
) -> bytes | list[bytes]:
    """The JSON list of the messages' payloads: the body `prepare` built (`Prepared`), else its
    pieces, joined only as the request is written (`_chunks`)."""
    if isinstance(messages, Prepared) and messages.sender is sender:
        return messages.body
    return _json_pieces([payload(m) for m in messages])


def prepare_json(
    sender: Sender, messages: Sequence[Message], payload: Callable[[Message], Any]
) -> Prepared:
    """`Sender.prepare` for a batch API: the whole body, as one object.

    Built on the claiming thread while the hand-off threads wait on their answers; written by
    one `sendall`, where an iterator of chunks cost the hand-off thread twice the CPU (an h11
    event, a write and a wait for the interpreter lock each)."""
    return Prepared(messages, sender, b"".join(_json_pieces([payload(m) for m in messages])))


def post(
    client: httpx.Client,
    provider: str,
    url: str,
    *,
    json: Any = None,
    body: bytes | list[bytes] | None = None,
    **kwargs: Any,
) -> httpx.Response:
    """POST, mapping transport errors onto the error tree.

    Failures before the request was fully sent are temporary. A read timeout or a dropped
    connection after it was sent leaves the outcome unknown (the provider may have accepted it;
    whether repeating it is safe is the sender's declared `idempotent`). JSON bodies are
    encoded with msgspec: about four times faster than the json module on 50 KB HTML parts,
    which is most of an API sender's cost per message.
    """
    if json is not None:
        body = _json_pieces(json)
    if body is not None:  # JSON: bytes (`prepare_json`) or pieces to join as they are written
        kwargs["content"] = body if isinstance(body, bytes) else _chunks(body)
        kwargs["headers"] = {
            "Content-Type": "application/json",
            "Content-Length": str(len(body) if isinstance(body, bytes) else sum(map(len, body))),
            **kwargs.get("headers", {}),
        }
    try:
        return _unbound(client.post(url, **kwargs))
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        raise TemporarySendError(f"{provider}: cannot connect ({type(exc).__name__})") from None
    except (httpx.WriteError, httpx.WriteTimeout) as exc:
        raise TemporarySendError(f"{provider}: request not sent ({type(exc).__name__})") from None
    except httpx.TransportError as exc:
        raise UnknownOutcome(
            f"{provider}: no answer after the request was sent ({type(exc).__name__})"
        ) from None


def _unbound(response: httpx.Response) -> httpx.Response:
    """The read response, without the stream httpx bound to it.

    That stream refers back to the response (a reference cycle), and the response to its
    request and so to the ~4 MB body of a batch: every body sent stayed alive until the cyclic
    garbage collector ran, and a split send's processes held ~170 MB each instead of ~75.
    The answer is read already (`client.post` without `stream=`): nothing is lost.
    """
    response.stream = httpx.ByteStream(b"")
    return response


def get(client: httpx.Client, provider: str, url: str, **kwargs: Any) -> httpx.Response:
    """GET for a lookup: any transport failure is a SendError (the record could not be read)."""
    try:
        return _unbound(client.get(url, **kwargs))
    except httpx.TransportError as exc:
        raise TemporarySendError(f"{provider}: lookup failed ({type(exc).__name__})") from None


#: what stands for a `Spliced` value in an encoded item: JSON never holds a raw control
#: character (msgspec writes one inside a string as \u0001), so splitting on it is exact
_MARK = b"\x01"


def encode_json(value: Any) -> bytes:
    """`value` as JSON bytes, `Spliced` values written in place."""
    return b"".join(_json_pieces(value))


def _chunks(pieces: list[bytes], size: int = 256 * 1024) -> Iterator[bytes]:
    """The pieces joined about `size` bytes at a time, each only when the request writes it:
    one chunk of a ~4 MB batch is alive at a time (hand-off threads each holding whole bodies
    made the C allocator keep memory, and RSS grew with the number sent). `prepare_json` is the
    faster path where a sender has a claiming thread to build on."""
    ends = list(accumulate(map(len, pieces)))  # ~30 pieces a reader: found in C, not a loop
    start = 0
    while start < len(pieces):
        stop = bisect_left(ends, (ends[start - 1] if start else 0) + size, start) + 1
        yield b"".join(pieces[start:stop])
        start = stop


def _json_pieces(value: Any) -> list[bytes]:
    """A JSON value as the byte pieces of its encoding, in order, joined by nobody yet: each
    `Spliced` value's pieces (the dispatch's pre-encoded parts, shared by every reader) go in
    as they are, between the encoded segments around them."""
    spliced: list[Spliced] = []

    def hook(obj: Any) -> Any:
        if isinstance(obj, Spliced):
            spliced.append(obj)
            return msgspec.Raw(_MARK)
        raise NotImplementedError(f"cannot encode {type(obj).__name__} as JSON")

    encoder = msgspec.json.Encoder(enc_hook=hook)
    items = value if isinstance(value, list) and value else None
    pieces: list[bytes] = [b"["] if items is not None else []
    for n, item in enumerate(items if items is not None else [value]):
        spliced.clear()
        encoded = encoder.encode(item)
        if n:
            pieces.append(b",")
        if not spliced:
            pieces.append(encoded)
            continue
        segments = encoded.split(_MARK)
        if len(segments) != len(spliced) + 1:
            raise ValueError("a Spliced value inside a raw JSON value")
        for segment, body in zip(segments, spliced, strict=False):
            pieces.append(segment)
            pieces.extend(body.pieces)
        pieces.append(segments[-1])
    if items is not None:
        pieces.append(b"]")
    return pieces


def retry_after(response: httpx.Response, now: float | None = None) -> float | None:
    """Seconds to wait from Retry-After (seconds or an HTTP date) or a reset timestamp."""
    value = response.headers.get("Retry-After")
    if value:
        value = value.strip()
        if value.isdigit():
            return float(value)
        try:
            when = parsedate_to_datetime(value).timestamp()
        except (TypeError, ValueError):
            return None
        return max(0.0, when - (time.time() if now is None else now))
    reset = response.headers.get("X-RateLimit-Reset")  # SendGrid: Unix time of the reset
    if reset and reset.strip().isdigit():
        return max(0.0, float(reset) - (time.time() if now is None else now))
    return None


def error_for(response: httpx.Response, provider: str, detail: str, credential: str) -> SendError:
    """The failure a non-2xx answer means: 401/403 stop the run, 429 is waited out, 408/409/5xx
    are temporary, 400/413/422 refuse the request for its content, anything else is permanent.
    None of these is about one recipient: a request-wide answer says nothing about one address.
    """
    status = response.status_code
    text = f"{provider}: HTTP {status}: {detail}".strip().rstrip(":")
    if status in (401, 403):
        return SenderUnavailable(
            f"{provider}: HTTP {status}: credentials refused; check {credential}"
        )
    if status == 429:
        return TemporarySendError(text, retry_after=retry_after(response), throttled=True)
    if status in (408, 409) or status >= 500:
        return TemporarySendError(text, retry_after=retry_after(response))
    if status in (400, 413, 422):
        return RejectedRequest(text)
    return PermanentSendError(text)


def json_or_empty(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return {}


def accepted_body(response: httpx.Response, provider: str) -> Any:
    """The JSON of a 2xx answer; UnknownOutcome when it does not parse, since the status says the
    provider took the request and only the body that would say what became of each message is
    missing."""
    try:
        return response.json()
    except ValueError:
        raise UnknownOutcome(
            f"{provider}: HTTP {response.status_code} with an answer that does not parse;"
            " the messages may have been accepted"
        ) from None
