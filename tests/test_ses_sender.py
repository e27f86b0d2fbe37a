"""The `ses` sender against a stub of SES API v2 on 127.0.0.1 (tests/ses_support.py)."""

from __future__ import annotations

import base64
import datetime as dt
import re
import sys
from pathlib import Path
from typing import Any

import botocore.auth
import dkim
import pytest
from ses_support import ACCESS_KEY, AUTHORIZATION, REGION, Reply, SesStub
from test_send_support import WEEK, add_subscribers, ready_week

from newsletter.delivery.deliver import send_dispatch
from newsletter.delivery.dkim import DkimSigner
from newsletter.delivery.message import Message
from newsletter.delivery.senders import SenderUnavailable, UnknownOutcome, make_sender
from newsletter.delivery.senders.http import make_client
from newsletter.delivery.senders.ses import SesSender
from newsletter.delivery.senders.sigv4 import AwsCredentials, SigV4
from newsletter.errors import PermanentSendError, SettingsError, TemporarySendError
from newsletter.settings import Settings, load_settings
from newsletter.store import Store

# the AWS SigV4 test suite (aws-sig-v4-test-suite, as in botocore's tests/unit/auth)
SUITE_KEY, SUITE_SECRET = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
SUITE_SCOPE = "AKIDEXAMPLE/20150830/us-east-1/service/aws4_request"


@pytest.mark.parametrize(
    ("method", "signature"),
    [
        ("GET", "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),  # get-vanilla
        (
            "POST",
            "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
        ),  # post-vanilla
    ],
)
def test_signs_the_aws_test_suite_requests_to_their_published_signatures(
    monkeypatch: pytest.MonkeyPatch, method: str, signature: str
) -> None:
    monkeypatch.setattr(
        botocore.auth, "get_current_datetime", lambda *a, **k: dt.datetime(2015, 8, 30, 12, 36)
    )
    signer = SigV4(AwsCredentials(SUITE_KEY, SUITE_SECRET), "us-east-1", "service")
    headers = signer.headers(method, "https://example.amazonaws.com/", b"", {})
    assert headers["X-Amz-Date"] == "20150830T123600Z"
    assert headers["Authorization"] == (
        f"AWS4-HMAC-SHA256 Credential={SUITE_SCOPE}, SignedHeaders=host;x-amz-date,"
        f" Signature={signature}"
    )


def _settings(settings: Settings, stub: SesStub, **extra: str) -> Settings:
    env = {**stub.env(**extra), "NEWSLETTER_DB": str(settings.db)}
    return load_settings(env, env_file=None)


def _message(to: str = "reader@example.org") -> Message:
    return Message(
        from_addr="The Brief <brief@example.org>",
        to_addr=to,
        to_name="Reader",
        subject="This week",
        html="<p>Hello</p>",
        text="Hello\n",
        message_id=f"<{to.replace('@', '.')}@brief.example.org>",
        headers={
            "List-Unsubscribe": "<https://brief.example.org/unsubscribe/t0k3n>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
    )


def test_one_message_goes_out_raw_signed_and_as_built(settings: Settings) -> None:
    with SesStub() as stub, make_sender(_settings(settings, stub)) as sender:
        message = _message()
        (result,) = sender.send([message])
    (got,) = stub.received
    assert result.ok and result.provider_id == got.message_id
    assert got.body["FromEmailAddress"] == "brief@example.org"
    assert got.body["Destination"] == {"ToAddresses": ["reader@example.org"]}
    assert "ConfigurationSetName" not in got.body
    parsed = got.parsed()  # our own MIME message, headers as built
    assert parsed["Message-ID"] == message.message_id and parsed["Subject"] == "This week"
    assert parsed.get_body(("plain",)).get_content().strip() == "Hello"
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert parsed["List-Unsubscribe"] == "<https://brief.example.org/unsubscribe/t0k3n>"
    auth = AUTHORIZATION.match(got.headers["authorization"])
    assert auth is not None
    assert (auth["key"], auth["region"], auth["service"]) == (ACCESS_KEY, REGION, "ses")
    assert auth["signed"] == "content-type;host;x-amz-date"
    assert "x-amz-security-token" not in got.headers


def test_session_token_and_configuration_set(settings: Settings) -> None:
    extra = {
        "AWS_SESSION_TOKEN": "FwoGZXIvYXdzEXAMPLE//token",
        "NEWSLETTER_SES_CONFIGURATION_SET": "weekly",
    }
    with SesStub() as stub, make_sender(_settings(settings, stub, **extra)) as sender:
        assert sender.send([_message()])[0].ok
    (got,) = stub.received
    assert got.body["ConfigurationSetName"] == "weekly"
    assert got.headers["x-amz-security-token"] == "FwoGZXIvYXdzEXAMPLE//token"
    signed = AUTHORIZATION.match(got.headers["authorization"])
    assert signed is not None and "x-amz-security-token" in signed["signed"].split(";")


def test_our_dkim_signature_survives_ses_rewriting_message_id_and_date(
    settings: Settings, tmp_path: Path
) -> None:
    from newsletter.checks.auth import keygen

    pair = keygen("ses2026", "example.org", tmp_path / "dkim")
    extra = {
        "NEWSLETTER_DKIM_KEY_FILE": str(pair.key_file),
        "NEWSLETTER_DKIM_SELECTOR": "ses2026",
    }
    with SesStub() as stub, make_sender(_settings(settings, stub, **extra)) as sender:
        assert sender.send([_message()])[0].ok
    raw = stub.received[0].raw
    assert raw.startswith(b"DKIM-Signature:")
    value = "".join(str(stub.received[0].parsed()["DKIM-Signature"]).split())
    tags = dict(tag.split("=", 1) for tag in value.split(";") if tag)
    signed = set(tags["h"].split(":"))
    assert {"from", "to", "subject", "list-unsubscribe", "list-unsubscribe-post"} <= signed
    assert not signed & {"message-id", "date"}
    # what SES does on the way: a Message-ID and a Date of its own
    rewritten = re.sub(
        rb"\r\nMessage-ID: [^\r]*", b"\r\nMessage-ID: <0102@email.amazonses.com>", raw
    )
    rewritten = re.sub(rb"\r\nDate: [^\r]*", b"\r\nDate: Tue, 1 Dec 2026 09:00:00 +0000", rewritten)
    assert rewritten != raw
    txt = DkimSigner.from_file(pair.key_file, "ses2026", "example.org").public_txt()
    assert dkim.verify(rewritten, dnsfunc=lambda name, timeout=5: txt.encode())


def _id(value: object) -> str | None:
    if isinstance(value, Reply):
        return value.code or ("drop" if value.drop else f"http{value.status}")
    return None


def _one(settings: Settings, reply: Reply | None) -> Any:
    with SesStub(reply=lambda to, body: reply) as stub, make_sender(_settings(settings, stub)) as s:
        return s.send([_message()])


NOT_VERIFIED = (
    "Email address is not verified. The following identities failed the check in region"
    " EU-WEST-1: {}"
)
T, P, U = TemporarySendError, PermanentSendError, SenderUnavailable
CASES = [
    (Reply(429, "TooManyRequestsException", "Slow down", {"Retry-After": "3"}), T, "TooMany"),
    (Reply(400, "LimitExceededException", "Maximum sending rate exceeded."), T, "Maximum"),
    (Reply(400, "LimitExceededException", "Daily message quota exceeded."), T, "Daily"),
    (Reply(500, "InternalFailure", "We encountered an internal error."), T, "HTTP 500"),
    (Reply(503, "ServiceUnavailable", ""), T, "HTTP 503"),
    (Reply(400, "MessageRejected", NOT_VERIFIED.format("reader@example.org")), P, "Rejected"),
    (Reply(400, "BadRequestException", "Illegal address"), P, "BadRequestException"),
    (Reply(400, "MessageRejected", NOT_VERIFIED.format("brief@example.org")), U, "NEWSLETTER_FROM"),
    (Reply(400, "AccountSuspendedException", "Suspended."), U, "may no longer send"),
    (Reply(400, "SendingPausedException", "Paused."), U, "NEWSLETTER_SES_CONFIGURATION_SET"),
    (Reply(400, "MailFromDomainNotVerifiedException", "Not verified"), U, "NEWSLETTER_FROM"),
    (Reply(404, "NotFoundException", "No such set."), U, "NEWSLETTER_SES_CONFIGURATION_SET"),
    (Reply(403, "UnrecognizedClientException", "Invalid token."), U, "AWS_ACCESS_KEY_ID"),
    (Reply(403, "AccessDeniedException", "Not ses:SendEmail"), U, "AWS_SECRET_ACCESS_KEY"),
    (Reply(200, raw_body=b"<html>gateway</html>"), UnknownOutcome, "without a MessageId"),
    (Reply(200, drop=True), UnknownOutcome, "no answer after the request was sent"),
]


@pytest.mark.parametrize(("reply", "error", "says"), CASES, ids=_id)
def test_answers_map_to_the_error_tree(
    settings: Settings, reply: Reply, error: type[Exception], says: str
) -> None:
    with pytest.raises(error) as caught:
        _one(settings, reply)
    assert says in str(caught.value)
    if reply.code == "TooManyRequestsException":
        assert caught.value.retry_after == 3.0  # type: ignore[attr-defined]
    if error is PermanentSendError:
        assert not caught.value.hard_bounce  # type: ignore[attr-defined]


def test_a_wrong_secret_is_refused_by_the_signature_check(settings: Settings) -> None:
    with (
        SesStub(secret="another-secret") as stub,
        make_sender(_settings(settings, stub)) as s,
        pytest.raises(SenderUnavailable, match=r"InvalidSignatureException.*AWS_SECRET_ACCESS_KEY"),
    ):
        s.send([_message()])
    assert stub.received == []


def test_timeouts_and_refused_connections(settings: Settings) -> None:
    hang = Reply(200, hang=2.0)
    with SesStub(reply=lambda to, body: hang) as stub:
        signer = SigV4(AwsCredentials(ACCESS_KEY, stub.secret), REGION, "ses")
        client = make_client(stub.url, timeout=0.5)
        with SesSender(client, signer) as sender, pytest.raises(UnknownOutcome):
            sender.send([_message()])  # it was accepted; only the answer was late
    assert len(stub.received) == 1
    client = make_client(stub.url, timeout=0.5)  # the stub is gone: nothing listens
    with (
        SesSender(client, signer) as sender,
        pytest.raises(TemporarySendError, match="cannot connect"),
    ):
        sender.send([_message()])


def test_settings_name_what_ses_needs(env: dict[str, str]) -> None:
    with pytest.raises(
        SettingsError, match="AWS_ACCESS_KEY_ID: required when NEWSLETTER_SENDER=ses"
    ):
        load_settings({**env, "NEWSLETTER_SENDER": "ses"}, env_file=None)
    with pytest.raises(SettingsError, match="AWS_REGION: required"):
        load_settings(
            {
                **env,
                "NEWSLETTER_SENDER": "ses",
                "AWS_ACCESS_KEY_ID": "A",
                "AWS_SECRET_ACCESS_KEY": "S",
            },
            env_file=None,
        )


def test_send_through_ses_reaches_everyone_once_and_records_their_ids(
    run, store: Store, settings: Settings
) -> None:
    ready_week(store, settings)
    emails = add_subscribers(store, 12)
    rejected = emails[4]
    reply = Reply(400, "MessageRejected", "Message contains a virus.")
    with SesStub(reply=lambda to, body: reply if to == rejected else None) as stub:
        result = run("send", "--week", str(WEEK), "--force", extra_env=stub.env())
    assert result.exit_code == 3, result.output
    assert (
        "11 sent, 1 failed" in result.output
        and f"{rejected}: ses: HTTP 400 MessageRejected" in result.output
    )
    got = stub.recipients()
    assert set(got) == set(emails) - {rejected} and max(got.values()) == 1
    dispatch_id = store.dispatches.get(str(WEEK))["id"]
    rows = {
        r[0]: (r[1], r[2])
        for r in store.db.execute(
            "SELECT s.email, d.status, d.provider_message_id FROM deliveries d"
            " JOIN subscribers s ON s.id = d.subscriber_id WHERE d.dispatch_id = ?",
            [dispatch_id],
        )
    }
    by_recipient = {r.recipient: r.message_id for r in stub.received}
    assert {e: v for e, v in rows.items() if e != rejected} == {
        e: ("sent", by_recipient[e]) for e in by_recipient
    }
    assert rows[rejected][0] == "failed"
    assert store.subscribers.get_by_email(rejected)["status"] == "active"  # not a bounce
    for received in stub.received:
        parsed = received.parsed()
        assert parsed["To"].addresses[0].addr_spec == received.recipient
        assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert base64.b64decode(stub.received[0].body["Content"]["Raw"]["Data"]) == stub.received[0].raw


def test_throttling_is_waited_out_then_sent(store: Store, settings: Settings) -> None:
    ready_week(store, settings)
    emails = add_subscribers(store, 3)
    throttled: list[str] = []

    def reply(to: str, body: dict[str, Any]) -> Reply | None:
        if to == emails[1] and len(throttled) < 2:
            throttled.append(to)
            return Reply(429, "TooManyRequestsException", "Slow down", {"Retry-After": "0"})
        return None

    with SesStub(reply=reply) as stub:
        ses = _settings(settings, stub, NEWSLETTER_RETRY_BACKOFF="0")
        with make_sender(ses) as sender:
            report = send_dispatch(store, ses, sender, WEEK)
    assert report.ok and report.sent == 3
    assert throttled == [emails[1], emails[1]]
    assert sorted(stub.recipients()) == sorted(emails)


def test_refused_credentials_stop_the_run_naming_the_settings(
    store: Store, settings: Settings
) -> None:
    ready_week(store, settings)
    add_subscribers(store, 40)
    with SesStub(secret="not-the-one-we-sign-with") as stub:
        ses = _settings(settings, stub)
        with make_sender(ses) as sender:
            report = send_dispatch(store, ses, sender, WEEK)
    assert report.unavailable and report.sent == 0 and not report.ok
    assert "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN" in report.unavailable
    assert report.unresolved.queued == 40  # nothing was handed over: all left for the next run
    assert len(stub.requests) < 40 and stub.received == []  # it stopped; nothing got through


def test_without_the_ses_extra_the_error_says_how_to_install_it(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "botocore.auth", None)  # as if botocore were missing
    with SesStub() as stub, pytest.raises(SettingsError, match=r"pip install 'newsletter\[ses\]'"):
        make_sender(_settings(settings, stub))
