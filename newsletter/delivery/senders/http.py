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


def json_body(message: Message, part: str) -> str | msgspec.Raw:
    """`message.html` or `message.text` for a JSON payload, joined from pieces JSON-encoded once
    per dispatch: re-escaping ~60 KB of HTML for every reader was most of an API sender's CPU.

    JSON escapes character by character, so the join equals encoding the whole string. A message
    whose bodies were replaced after composing (or built by hand) is encoded the plain way.
    """
    fast = message.prebuilt
    if fast is None or fast.html is not message.html or fast.text is not message.text:
        return getattr(message, part)
    html = part == "html"
    pieces, slots = _encoded_pieces(fast.template, html)
    values = fast.html_values if html else fast.values
    out = [b'"', pieces[0]]
    for slot, piece in zip(slots, pieces[1:], strict=True):
        out.append(_JSON.encode(values[slot])[1:-1])
        out.append(piece)
    out.append(b'"')
    return msgspec.Raw(b"".join(out))


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


def _json_chunks(value: Any, size: int = 256 * 1024) -> list[bytes]:
    """A JSON list in pieces of about `size` bytes: a batch of 100 readers' HTML is ~6 MB, and
    buffers that size, freed from several threads, make the C allocator hold on to memory (RSS
    grew with the number sent); pieces this small do not, and still go out in few writes."""
    if not isinstance(value, list) or not value:
        return [_JSON.encode(value)]
    chunks, part, length = [], [b"["], 1
    for n, item in enumerate(value):
        encoded = _JSON.encode(item)
        if length + len(encoded) > size and len(part) > 1:
            chunks.append(b"".join(part))
            part, length = [], 0
        part += [b","] if n else []
        part.append(encoded)
        length += len(encoded) + 1
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
