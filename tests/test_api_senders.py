"""The email API senders against the request and response shapes each provider documents,
served by httpx.MockTransport: payloads, batching, and how errors map to retries.
"""

from __future__ import annotations

import base64
import gc
import json
import weakref
from collections.abc import Callable
from urllib.parse import parse_qs

import httpx
import pytest
from test_send_support import WEEK, add_subscribers, ready_week

from newsletter.delivery.deliver import send_dispatch
from newsletter.delivery.message import Message
from newsletter.delivery.senders import (
    MailgunSender,
    PostmarkSender,
    ResendSender,
    SendGridSender,
    make_sender,
)
from newsletter.delivery.senders.http import make_client
from newsletter.delivery.senders.sendgrid import MAX_SUBSTITUTION_BYTES
from newsletter.errors import PermanentSendError, TemporarySendError
from newsletter.settings import Settings
from newsletter.store import Store

Handler = Callable[[httpx.Request], httpx.Response]


def _message(i: int, *, name: str = "") -> Message:
    url = f"https://news.example.org/unsubscribe/tok{i}.abc"
    return Message(
        from_addr="The Brief <brief@example.org>",
        to_addr=f"reader{i}@example.com",
        to_name=name or f"Reader {i}",
        subject="Issue 1: Chipmakers guide capex up",
        html=f"<html><body><p>Hello Reader {i},</p><p>Body</p>"
        f'<a href="{url}">Unsubscribe</a></body></html>',
        text=f"Hello Reader {i},\n\nBody\n\nUnsubscribe: {url}\n",
        message_id=f"<m{i}@example.org>",
        headers={
            "List-Unsubscribe": f"<{url}>, <mailto:brief@example.org?subject=unsubscribe>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            "List-Id": "The Brief <weekly.example.org>",
        },
        tag="2026-W24",
    )


def _client(handler: Handler, base: str = "https://api.example.test") -> httpx.Client:
    return make_client(base, transport=httpx.MockTransport(handler))


def test_postmark_batch_payload_and_per_message_results() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        body = json.loads(request.content)
        return httpx.Response(
            200,
            json=[
                {
                    "ErrorCode": 406 if m["To"].startswith("Reader 1 ") else 0,
                    "Message": "You tried to send to recipient(s) that have been marked as"
                    " inactive."
                    if m["To"].startswith("Reader 1 ")
                    else "OK",
                    "MessageID": f"pm-{n}",
                    "SubmittedAt": "2026-06-15T07:00:00.0000000-04:00",
                    "To": m["To"],
                }
                for n, m in enumerate(body)
            ],
        )

    sender = PostmarkSender("server-token", _client(handler), stream="broadcast")
    results = sender.send([_message(0), _message(1), _message(2)])
    (request,) = seen
    assert request.method == "POST" and request.url.path == "/email/batch"
    assert request.headers["X-Postmark-Server-Token"] == "server-token"
    assert request.headers["Accept"] == "application/json"
    body = json.loads(request.content)
    first = body[0]
    assert first["From"] == "The Brief <brief@example.org>"
    assert first["To"] == "Reader 0 <reader0@example.com>"
    assert first["MessageStream"] == "broadcast"
    assert first["HtmlBody"].startswith("<html>") and first["TextBody"].startswith("Hello")
    headers = {h["Name"]: h["Value"] for h in first["Headers"]}
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert headers["List-Unsubscribe"].startswith("<https://news.example.org/unsubscribe/tok0")
    assert [r.ok for r in results] == [True, False, True]
    assert results[0].provider_id == "pm-0"
    assert isinstance(results[1].error, PermanentSendError) and results[1].error.hard_bounce
    assert PostmarkSender.batch_size == 500


def test_postmark_whole_request_errors_map_to_permanent_and_temporary() -> None:
    answers = iter(
        [
            httpx.Response(422, json={"ErrorCode": 300, "Message": "Invalid email request"}),
            httpx.Response(429, headers={"Retry-After": "3"}, json={}),
            httpx.Response(503, text="unavailable"),
        ]
    )
    sender = PostmarkSender("t", _client(lambda r: next(answers)))
    with pytest.raises(PermanentSendError, match="HTTP 422: Invalid email request"):
        sender.send([_message(0)])
    with pytest.raises(TemporarySendError) as limited:
        sender.send([_message(0)])
    assert limited.value.retry_after == 3
    with pytest.raises(TemporarySendError, match="HTTP 503"):
        sender.send([_message(0)])


def _apply(template: str, substitutions: dict[str, str]) -> str:
    for tag, value in substitutions.items():
        template = template.replace(tag, value)
    return template


def test_sendgrid_one_call_with_a_personalization_per_reader() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(202, headers={"X-Message-Id": "sg-batch-1"})

    messages = [_message(i) for i in range(3)]
    results = SendGridSender("SG.key", _client(handler)).send(messages)
    (request,) = seen
    assert request.url.path == "/v3/mail/send"
    assert request.headers["Authorization"] == "Bearer SG.key"
    body = json.loads(request.content)
    assert body["from"] == {"email": "brief@example.org", "name": "The Brief"}
    assert body["subject"] == messages[0].subject
    assert [c["type"] for c in body["content"]] == ["text/plain", "text/html"]
    text, html = (c["value"] for c in body["content"])
    assert len(body["personalizations"]) == 3
    for message, item in zip(messages, body["personalizations"], strict=True):
        assert item["to"] == [{"email": message.to_addr, "name": message.to_name}]
        assert item["headers"]["List-Unsubscribe"] == message.headers["List-Unsubscribe"]
        assert item["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        # the shared content with this reader's values filled in is exactly their copy
        assert _apply(html, item["substitutions"]) == message.html
        assert _apply(text, item["substitutions"]) == message.text
        assert sum(len(k) + len(v) for k, v in item["substitutions"].items()) < (
            MAX_SUBSTITUTION_BYTES
        )
    assert all(r.ok and r.provider_id == "sg-batch-1" for r in results)


def test_sendgrid_copies_that_differ_in_shape_go_in_calls_of_their_own() -> None:
    bodies: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(202, headers={"X-Message-Id": f"sg-{len(bodies)}"})

    odd = _message(9)
    odd = Message(**{**odd.__dict__, "html": odd.html.replace("<p>Body</p>", "<p>A</p><p>B</p>")})
    results = SendGridSender("k", _client(handler)).send([_message(0), odd, _message(2)])
    assert len(bodies) == 2
    assert [len(b["personalizations"]) for b in bodies] == [2, 1]
    assert [r.provider_id for r in results] == ["sg-1", "sg-2", "sg-1"]
    assert bodies[1]["content"][1]["value"] == odd.html


def test_sendgrid_errors_are_reported_with_the_providers_words() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            400,
            json={"errors": [{"message": "The from address does not match a verified Sender"}]},
        )

    with pytest.raises(PermanentSendError, match="verified Sender"):
        SendGridSender("k", _client(handler)).send([_message(0)])


def test_mailgun_posts_one_form_per_message_with_basic_auth() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200, json={"id": f"<mg{len(seen)}@mg.example.org>", "message": "Queued. Thank you."}
        )

    sender = MailgunSender("key-123", "mg.example.org", _client(handler))
    results = sender.send([_message(0)])
    (request,) = seen
    assert request.url.path == "/v3/mg.example.org/messages"
    assert request.headers["Authorization"] == "Basic " + base64.b64encode(b"api:key-123").decode(
        "ascii"
    )
    form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
    assert form["from"] == "The Brief <brief@example.org>"
    assert form["to"] == "Reader 0 <reader0@example.com>"
    assert form["h:List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert form["h:List-Unsubscribe"].startswith("<https://news.example.org/unsubscribe/tok0")
    assert form["o:tag"] == "2026-W24"
    assert form["html"] == _message(0).html and form["text"] == _message(0).text
    assert results[0].provider_id == "<mg1@mg.example.org>"


def test_resend_batch_with_a_stable_idempotency_key() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) == 1:
            return httpx.Response(
                500,
                json={"statusCode": 500, "message": "Internal", "name": "internal_server_error"},
            )
        body = json.loads(request.content)
        return httpx.Response(200, json={"data": [{"id": f"re-{n}"} for n in range(len(body))]})

    sender = ResendSender("re_key", _client(handler))
    batch = [_message(0), _message(1)]
    with pytest.raises(TemporarySendError, match="HTTP 500: Internal"):
        sender.send(batch)
    results = sender.send(batch)
    first, again = seen
    assert again.url.path == "/emails/batch"
    assert again.headers["Authorization"] == "Bearer re_key"
    assert again.headers["Idempotency-Key"] == first.headers["Idempotency-Key"]
    item = json.loads(again.content)[0]
    assert item["from"] == "The Brief <brief@example.org>"
    assert item["to"] == ["Reader 0 <reader0@example.com>"]
    assert item["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert item["tags"] == [{"name": "dispatch", "value": "2026-W24"}]
    assert [r.provider_id for r in results] == ["re-0", "re-1"]


# -- through `send`: retries, waits and permanent failures ------------------------------------

PROVIDERS = {
    "postmark": {"postmark_token": "pm-token"},
    "sendgrid": {"sendgrid_key": "SG.key"},
    "mailgun": {"mailgun_key": "key-1", "mailgun_domain": "mg.example.org"},
    "resend": {"resend_key": "re_key"},
}


def _accept(provider: str, request: httpx.Request) -> httpx.Response:
    if provider == "postmark":
        body = json.loads(request.content)
        return httpx.Response(
            200, json=[{"ErrorCode": 0, "Message": "OK", "MessageID": "x"} for _ in body]
        )
    if provider == "sendgrid":
        return httpx.Response(202, headers={"X-Message-Id": "x"})
    if provider == "mailgun":
        return httpx.Response(200, json={"id": "<x@mg>", "message": "Queued. Thank you."})
    body = json.loads(request.content)
    return httpx.Response(200, json={"data": [{"id": "x"} for _ in body]})


def _recipients(provider: str, request: httpx.Request) -> list[str]:
    if provider == "postmark":
        return [m["To"] for m in json.loads(request.content)]
    if provider == "sendgrid":
        return [p["to"][0]["email"] for p in json.loads(request.content)["personalizations"]]
    if provider == "mailgun":
        return parse_qs(request.content.decode())["to"]
    return [m["to"][0] for m in json.loads(request.content)]


@pytest.fixture
def week_ready(store: Store, settings: Settings) -> Store:
    ready_week(store, settings)
    add_subscribers(store, 4)
    return store


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_429_is_waited_out_and_500_retried(
    provider: str, week_ready: Store, settings: Settings
) -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) == 1:
            return httpx.Response(429, headers={"Retry-After": "7"}, json={"message": "slow down"})
        if len(calls) == 2:
            return httpx.Response(500, json={"message": "oops"})
        return _accept(provider, request)

    settings = settings.replace(
        sender=provider, concurrency=1, retry_backoff=0.5, **PROVIDERS[provider]
    )
    slept: list[float] = []
    with make_sender(settings, transport=httpx.MockTransport(handler)) as sender:
        report = send_dispatch(week_ready, settings, sender, WEEK, sleep=slept.append)
    assert report.ok and report.sent == 4
    # the Retry-After held back every hand-off (less the moment since the answer); the 500
    # was retried after its own backoff, which the longer wait covered
    assert slept and slept[0] >= 6.9
    delivered = [r for c in calls[2:] for r in _recipients(provider, c)]
    assert len(delivered) == 4 == len(set(delivered))


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_422_is_permanent_and_not_retried(
    provider: str, week_ready: Store, settings: Settings
) -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(422, json={"message": "invalid", "Message": "invalid"})

    settings = settings.replace(sender=provider, concurrency=1, **PROVIDERS[provider])
    with make_sender(settings, transport=httpx.MockTransport(handler)) as sender:
        report = send_dispatch(week_ready, settings, sender, WEEK, sleep=lambda s: None)
    assert report.failed == 4 and report.sent == 0 and not report.ok
    # a refused batch is split in halves until each reader has been tried alone, once
    singles = [c for c in calls if len(_recipients(provider, c)) == 1]
    assert len(calls) == (4 if provider == "mailgun" else 4 + 2 + 1)
    assert sorted(r for c in singles for r in _recipients(provider, c)) == sorted(
        set(r for c in calls for r in _recipients(provider, c))
    )
    assert "HTTP 422" in report.errors[0]


def test_refused_credentials_stop_the_run_naming_the_setting(
    week_ready: Store, settings: Settings
) -> None:
    settings = settings.replace(sender="postmark", concurrency=1, postmark_token="wrong")
    transport = httpx.MockTransport(lambda r: httpx.Response(401, json={"ErrorCode": 10}))
    with make_sender(settings, transport=transport) as sender:
        report = send_dispatch(week_ready, settings, sender, WEEK)
    assert not report.ok and "POSTMARK_SERVER_TOKEN" in report.unavailable
    assert "wrong" not in report.unavailable + " ".join(report.errors)  # secrets never echoed
    assert report.remaining == 4 and report.failed == 0  # nothing was accepted: still queued


def test_no_answer_after_the_request_left_is_unknown_unless_idempotent() -> None:
    from newsletter.delivery.senders import UnknownOutcome

    def timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("no answer", request=request)

    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(UnknownOutcome, match="no answer after the request was sent"):
        PostmarkSender("t", _client(timeout)).send([_message(0)])
    with pytest.raises(TemporarySendError, match="cannot connect"):
        PostmarkSender("t", _client(refused)).send([_message(0)])
    # the same for Resend; its Idempotency-Key is what makes a repeat safe (declared, below)
    with pytest.raises(UnknownOutcome, match="no answer"):
        ResendSender("k", _client(timeout)).send([_message(0)])
    assert ResendSender.idempotent and not PostmarkSender.idempotent


def test_an_unanswered_resend_batch_is_repeated_as_the_same_request(
    week_ready: Store, settings: Settings
) -> None:
    """Resend answers a repeat of a request it took with the original answer: the state
    machine repeats the unanswered batch, same emails, same order, same key."""
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) == 1:
            raise httpx.ReadTimeout("no answer", request=request)
        return _accept("resend", request)

    settings = settings.replace(sender="resend", resend_key="k", concurrency=1)
    with make_sender(settings, transport=httpx.MockTransport(handler)) as sender:
        report = send_dispatch(week_ready, settings, sender, WEEK, sleep=lambda s: None)
    assert report.ok and report.sent == 4 and report.unknown == 0
    first, again = calls
    assert again.headers["Idempotency-Key"] == first.headers["Idempotency-Key"]
    assert again.content == first.content


def test_an_unknown_outcome_is_recorded_and_not_retried(
    week_ready: Store, settings: Settings
) -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        raise httpx.ReadTimeout("no answer", request=request)

    settings = settings.replace(sender="postmark", postmark_token="t", concurrency=1)
    with make_sender(settings, transport=httpx.MockTransport(handler)) as sender:
        report = send_dispatch(week_ready, settings, sender, WEEK, sleep=lambda s: None)
    assert len(calls) == 1 and report.unknown == 4 and report.sent == 0 and not report.ok
    dispatch_id = week_ready.dispatches.get(str(WEEK))["id"]
    assert week_ready.deliveries.counts(dispatch_id)["unknown"] == 4


def test_prebuilt_json_bodies_equal_encoding_the_composed_text(settings: Settings, store) -> None:
    """The per-dispatch JSON pieces joined with one reader's values decode to exactly the
    composed html and text, whatever the reader's name holds."""
    import json

    from newsletter.delivery.senders.http import Spliced, encode_json, json_bodies
    from newsletter.demo import load_sample
    from newsletter.dispatch.build import approve, build_dispatch
    from newsletter.models import Subscriber
    from newsletter.preview import _composer
    from newsletter.weeks import Week

    week = Week(2026, 24)
    load_sample(store)
    build_dispatch(store, settings, week)
    approve(store, settings, week)
    composer = _composer(store, settings, week)
    for name in ('Zoë "Q" </script> \\ \u2028 日本', "", "Plain Name"):
        message = composer.compose(Subscriber(7, "zoe@example.org", name, "active"))
        html, text = json_bodies(message)
        for fast, part in ((html, "html"), (text, "text")):
            assert isinstance(fast, Spliced)
            assert json.loads(bytes(fast)) == getattr(message, part)
        # written in place inside a request body, between other values and items
        items = [{"a": 1, "html": html, "text": text}]
        for size in (64, 256 * 1024):  # chunked inside a message, or all in one piece
            decoded = json.loads(encode_json(items * 3))
            assert decoded == [{"a": 1, "html": message.html, "text": message.text}] * 3
            assert json.loads(b"".join(_chunks(items * 3, size))) == decoded
    # bodies replaced after composing are encoded the plain way
    from dataclasses import replace

    changed = replace(message, html="<p>other</p>")
    assert json_bodies(changed)[0] == "<p>other</p>"


def _chunks(value: object, size: int) -> list[bytes]:
    from newsletter.delivery.senders.http import _chunks, _json_pieces

    return list(_chunks(_json_pieces(value), size))


@pytest.mark.parametrize("kind", ["resend", "postmark"])
def test_a_batch_request_and_its_body_are_freed_once_its_answer_is_read(kind: str) -> None:
    """No reference cycle keeps a sent request (and its megabytes of JSON) alive until the
    garbage collector runs: a split send's memory stays flat however many batches it sends."""
    requests: list[weakref.ref[httpx.Request]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(weakref.ref(request))
        count = len(json.loads(request.content))
        if kind == "postmark":
            return httpx.Response(
                200, json=[{"ErrorCode": 0, "MessageID": f"pm-{n}"} for n in range(count)]
            )
        return httpx.Response(200, json={"data": [{"id": f"re-{n}"} for n in range(count)]})

    sender = (
        PostmarkSender("pm-token", _client(handler))
        if kind == "postmark"
        else ResendSender("re_key", _client(handler))
    )
    batch = [_message(0), _message(1)]
    gc.disable()
    try:
        answers = [sender.send(sender.prepare(batch)) for _ in range(3)]
        alive = [ref() is not None for ref in requests]
    finally:
        gc.enable()
    assert all(r.ok for answer in answers for r in answer)
    assert alive == [False, False, False]


@pytest.mark.parametrize("kind", ["resend", "postmark"])
def test_a_prepared_batch_posts_the_same_body_as_one_built_in_the_hand_off(kind: str) -> None:
    """`prepare` builds the request on the claiming thread; what goes out is byte for byte the
    request `send` builds by itself, and a batch prepared by another sender is built anew."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        count = len(json.loads(request.content))
        if kind == "postmark":
            return httpx.Response(
                200, json=[{"ErrorCode": 0, "MessageID": f"pm-{n}"} for n in range(count)]
            )
        return httpx.Response(200, json={"data": [{"id": f"re-{n}"} for n in range(count)]})

    def sender() -> ResendSender | PostmarkSender:
        if kind == "postmark":
            return PostmarkSender("pm-token", _client(handler))
        return ResendSender("re_key", _client(handler))

    one, other = sender(), sender()
    batch = [_message(0), _message(1, name='Zoë "Q" \\ </script>'), _message(2)]
    prepared = one.prepare(batch)
    assert list(prepared) == batch
    results = [one.send(batch), one.send(prepared), other.send(prepared)]
    plain, fast, foreign = seen
    assert fast.content == plain.content == foreign.content
    assert fast.headers["Content-Length"] == str(len(plain.content))
    html = "HtmlBody" if kind == "postmark" else "html"
    assert json.loads(fast.content)[1][html] == batch[1].html
    assert [r.message for r in results[1]] == batch
    assert all(r.ok for answer in results for r in answer)
