"""What the HTTP API senders share: one httpx client, and the mapping of HTTP answers and
transport errors onto our error tree, with Retry-After honoured.

The line that matters: before the request has fully left, a failure is temporary (nothing can
have been accepted); after it, a lost or unreadable answer is `UnknownOutcome` (the provider
may have accepted it). A 2xx is never a failure, whatever its body says.
"""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import msgspec

from newsletter import __version__
from newsletter.delivery.message import Message, MimeTemplate
from newsletter.delivery.senders.base import RejectedRequest, SenderUnavailable, UnknownOutcome
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
        headers={"User-Agent": USER_AGENT},
        limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
    )


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


def json_body(message: Message, part: str) -> str | Spliced:
    """`message.html` or `message.text` for a JSON payload, from pieces JSON-encoded once per
    dispatch: re-escaping ~60 KB of HTML for every reader was most of an API sender's CPU.

    JSON escapes character by character, so the join equals encoding the whole string. A message
    whose bodies were replaced after composing (or built by hand) is encoded the plain way.
    `encode_json` (and `post(json=...)`) write a `Spliced` value in place.
    """
    fast = message.template_bodies
    if fast is None:
        return getattr(message, part)
    html = part == "html"
    pieces, slots = _encoded_pieces(fast.template, html)
    values = fast.html_values if html else fast.values
    out = [b'"', pieces[0]]
    for slot, piece in zip(slots, pieces[1:], strict=True):
        out.append(_JSON.encode(values[slot])[1:-1])
        out.append(piece)
    out.append(b'"')
    return Spliced(out)


def _encoded_pieces(template: MimeTemplate, html: bool) -> tuple[list[bytes], tuple[str, ...]]:
    cache = template.__dict__.setdefault("_json_pieces", {})  # one template per dispatch
    if html not in cache:
        parts, slots = template.body_source(html)
        cache[html] = ([_JSON.encode(p)[1:-1] for p in parts], slots)
    return cache[html]


def post(
    client: httpx.Client,
    provider: str,
    url: str,
    *,
    json: Any = None,
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
        chunks = _json_chunks(json)
        kwargs["content"] = iter(chunks)
        kwargs["headers"] = {
            "Content-Type": "application/json",
            "Content-Length": str(sum(map(len, chunks))),
            **kwargs.get("headers", {}),
        }
    try:
        return client.post(url, **kwargs)
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        raise TemporarySendError(f"{provider}: cannot connect ({type(exc).__name__})") from None
    except (httpx.WriteError, httpx.WriteTimeout) as exc:
        raise TemporarySendError(f"{provider}: request not sent ({type(exc).__name__})") from None
    except httpx.TransportError as exc:
        raise UnknownOutcome(
            f"{provider}: no answer after the request was sent ({type(exc).__name__})"
        ) from None


def get(client: httpx.Client, provider: str, url: str, **kwargs: Any) -> httpx.Response:
    """GET for a lookup: any transport failure is a SendError (the record could not be read)."""
    try:
        return client.get(url, **kwargs)
    except httpx.TransportError as exc:
        raise TemporarySendError(f"{provider}: lookup failed ({type(exc).__name__})") from None


#: what stands for a `Spliced` value in an encoded item: JSON never holds a raw control
#: character (msgspec writes one inside a string as \u0001), so splitting on it is exact
_MARK = b"\x01"


def encode_json(value: Any) -> bytes:
    """`value` as JSON bytes, `Spliced` values written in place."""
    return b"".join(_json_chunks(value))


def _json_chunks(value: Any, size: int = 256 * 1024) -> list[bytes]:
    """A JSON value in pieces of about `size` bytes: a batch of 100 readers' HTML is ~4 MB, and
    buffers that size, freed from several threads, make the C allocator hold on to memory (RSS
    grew with the number sent); pieces this small do not, and still go out in few writes.
    Each `Spliced` value's pieces go straight into the piece they belong to."""
    spliced: list[Spliced] = []

    def hook(obj: Any) -> Any:
        if isinstance(obj, Spliced):
            spliced.append(obj)
            return msgspec.Raw(_MARK)
        raise NotImplementedError(f"cannot encode {type(obj).__name__} as JSON")

    encoder = msgspec.json.Encoder(enc_hook=hook)
    items = value if isinstance(value, list) and value else None
    chunks: list[bytes] = []
    part: list[bytes] = [b"["] if items is not None else []
    length = len(part)
    for n, item in enumerate(items if items is not None else [value]):
        spliced.clear()
        encoded = encoder.encode(item)
        if length > 1 and length + len(encoded) > size:
            chunks.append(b"".join(part))
            part, length = [], 0
        if n:
            part.append(b",")
            length += 1
        if not spliced:
            part.append(encoded)
            length += len(encoded)
            continue
        segments = encoded.split(_MARK)
        if len(segments) != len(spliced) + 1:
            raise ValueError("a Spliced value inside a raw JSON value")
        for segment, body in zip(segments, spliced, strict=False):
            part.append(segment)
            part.extend(body.pieces)
            length += len(segment) + sum(map(len, body.pieces))
        part.append(segments[-1])
        length += len(segments[-1])
    if items is not None:
        part.append(b"]")
    chunks.append(b"".join(part))
    return chunks


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
