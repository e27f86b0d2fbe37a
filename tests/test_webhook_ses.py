"""`POST /webhooks/ses` over real HTTP: SNS messages signed with a certificate made here.

The SNS host rule is the production one; only the fetcher is the test's (it answers for the
SNS certificate and subscription URLs, and records what was asked), so nothing leaves the
machine and nothing is fetched from anywhere the rule does not allow.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from test_web_live import WEB_ENV, Live, serving

from newsletter.settings import load_settings
from subscribers.sns import Refused, SnsTrust

TOPIC = "arn:aws:sns:eu-west-1:123456789012:brief-ses-feedback"
CERT_URL = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-7506a1e35b36ef5a444dd1a8e7cc3ed8.pem"
SUBSCRIBE_URL = (
    "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn="
    + TOPIC
    + "&Token=2336412f37fb687f5d51e6e2425dacbba9e4f6ff3f2c2f8c1ff8d3e1c2"
)
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
_NAME = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
CERT_PEM = (
    x509.CertificateBuilder()
    .subject_name(_NAME)
    .issuer_name(_NAME)
    .public_key(KEY.public_key())
    .serial_number(x509.random_serial_number())
    .not_valid_before(datetime.now(UTC) - timedelta(days=1))
    .not_valid_after(datetime.now(UTC) + timedelta(days=30))
    .sign(KEY, hashes.SHA256())
    .public_bytes(serialization.Encoding.PEM)
)


class Fetcher:
    """What the webhook fetched, answered from memory."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def __call__(self, url: str) -> bytes:
        self.asked.append(url)
        if url == CERT_URL:
            return CERT_PEM
        if url.startswith("https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription"):
            return b"<ConfirmSubscriptionResponse/>"
        raise Refused(f"{url}: HTTP 404")


def signed(message: dict[str, Any], version: str = "1") -> dict[str, Any]:
    """The message as SNS signs it: "Name\\nvalue\\n" for the documented fields, in order."""
    message = {**message, "SignatureVersion": version, "SigningCertURL": CERT_URL}
    if message["Type"] == "Notification":
        names = ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
    else:
        names = ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"]
    text = "".join(f"{n}\n{message[n]}\n" for n in names if n in message)
    algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()  # noqa: S303 - SNS v1
    signature = KEY.sign(text.encode(), padding.PKCS1v15(), algorithm)
    return {**message, "Signature": base64.b64encode(signature).decode()}


def _now(offset: float = 0) -> str:
    return (
        datetime.fromtimestamp(time.time() + offset, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
        + "Z"
    )


def notification(event: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "Type": "Notification",
        "MessageId": str(uuid.uuid4()),
        "TopicArn": TOPIC,
        "Message": json.dumps(event),
        "Timestamp": _now(),
        "UnsubscribeURL": "https://sns.eu-west-1.amazonaws.com/?Action=Unsubscribe",
        **fields,
    }


def bounce(email: str, kind: str = "Permanent", key: str = "notificationType") -> dict[str, Any]:
    return {
        key: "Bounce",
        "bounce": {
            "bounceType": kind,
            "bounceSubType": "General",
            "bouncedRecipients": [
                {
                    "emailAddress": email,
                    "action": "failed",
                    "status": "5.1.1",
                    "diagnosticCode": "smtp; 550 5.1.1 user unknown",
                }
            ],
            "timestamp": _now(),
            "feedbackId": "0102015fd91a6479-ae22395c-1f7d-4423-a9e5-e0715bffc731-000000",
        },
        "mail": {"messageId": "0102015fd91a5ca3-93c245fe", "destination": [email]},
    }


def complaint(email: str, feedback: str = "abuse") -> dict[str, Any]:
    return {
        "notificationType": "Complaint",
        "complaint": {
            "complainedRecipients": [{"emailAddress": email}],
            "complaintFeedbackType": feedback,
            "timestamp": _now(),
            "feedbackId": "0102015fd91a6479-feedback",
        },
        "mail": {"messageId": "0102015fd91a5ca3-93c245fe", "destination": [email]},
    }


@pytest.fixture
def fetcher() -> Fetcher:
    return Fetcher()


@pytest.fixture
def hooked(env: dict[str, str], fetcher: Fetcher) -> Iterator[Live]:
    settings = load_settings(
        {**env, **WEB_ENV, "NEWSLETTER_SES_SNS_TOPIC_ARNS": TOPIC}, env_file=None
    )
    with serving(settings) as live:
        live.app.extensions["sns"] = SnsTrust(get=fetcher)
        for email in ("hard@example.org", "spam@example.org", "soft@example.org"):
            live.store.subscribers.add(email, name=None, status="active", actor="test")
        yield live


def post(live: Live, message: dict[str, Any], **headers: str) -> Any:
    return live.client.post(
        "/webhooks/ses",
        content=json.dumps(message),
        headers={
            "Content-Type": "text/plain; charset=UTF-8",
            "x-amz-sns-message-type": str(message.get("Type")),
            "x-amz-sns-topic-arn": str(message.get("TopicArn")),
            **headers,
        },
    )


def status(live: Live, email: str) -> str:
    return live.store.subscribers.get_by_email(email)["status"]


@pytest.mark.parametrize("version", ["1", "2"])
def test_a_permanent_bounce_and_a_complaint_are_recorded(
    hooked: Live, fetcher: Fetcher, version: str
) -> None:
    answer = post(hooked, signed(notification(bounce("hard@example.org")), version))
    assert answer.status_code == 200 and answer.json() == {"ok": True, "events": 1, "changed": 1}
    answer = post(hooked, signed(notification(complaint("spam@example.org")), version))
    assert answer.status_code == 200 and answer.json()["changed"] == 1
    assert status(hooked, "hard@example.org") == "bounced"
    assert status(hooked, "spam@example.org") == "complained"
    assert fetcher.asked == [CERT_URL]  # fetched once, then cached
    events = hooked.store.subscribers.events(
        hooked.store.subscribers.get_by_email("hard@example.org")["id"]
    )
    assert any(e["actor"] == "webhook:ses" for e in events)


def test_transient_bounces_deliveries_and_not_spam_change_nothing(hooked: Live) -> None:
    for event in (
        bounce("soft@example.org", "Transient"),
        bounce("soft@example.org", "Undetermined"),
        {"notificationType": "Delivery", "delivery": {"recipients": ["soft@example.org"]}},
        complaint("soft@example.org", "not-spam"),
    ):
        answer = post(hooked, signed(notification(event)))
        assert answer.status_code == 200 and answer.json()["changed"] == 0
    assert status(hooked, "soft@example.org") == "active"


def test_event_publishing_shape_is_understood_too(hooked: Live) -> None:
    answer = post(hooked, signed(notification(bounce("hard@example.org", key="eventType"))))
    assert answer.json()["changed"] == 1 and status(hooked, "hard@example.org") == "bounced"


def test_a_tampered_message_is_refused(hooked: Live) -> None:
    message = signed(notification(bounce("soft@example.org", "Transient")))
    message["Message"] = json.dumps(bounce("hard@example.org"))
    answer = post(hooked, message)
    assert answer.status_code == 401 and status(hooked, "hard@example.org") == "active"


@pytest.mark.parametrize(
    "url",
    [
        "http://sns.eu-west-1.amazonaws.com/SimpleNotificationService-1.pem",
        "https://sns.eu-west-1.amazonaws.com.evil.example/SimpleNotificationService-1.pem",
        "https://evil.example/sns.eu-west-1.amazonaws.com/SimpleNotificationService-1.pem",
        "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-1.txt",
        "https://sns.eu-west-1.amazonaws.com:8443/SimpleNotificationService-1.pem",
        "https://user@sns.eu-west-1.amazonaws.com/SimpleNotificationService-1.pem",
    ],
)
def test_certificates_come_only_from_sns_hosts(hooked: Live, fetcher: Fetcher, url: str) -> None:
    message = {**signed(notification(bounce("hard@example.org"))), "SigningCertURL": url}
    answer = post(hooked, message)
    assert answer.status_code == 401 and fetcher.asked == []
    assert status(hooked, "hard@example.org") == "active"


def test_china_region_hosts_match_the_pattern() -> None:
    trust = SnsTrust(get=lambda url: b"")
    assert trust.check(
        "https://sns.cn-north-1.amazonaws.com.cn/x.pem", "SigningCertURL", suffix=".pem"
    )
    with pytest.raises(Refused):
        trust.check("https://sns.cn-north-1.amazonaws.com.cn.evil/x.pem", "SigningCertURL")


def test_another_topic_an_old_message_or_a_strange_version_is_refused(
    hooked: Live, fetcher: Fetcher
) -> None:
    for message in (
        signed(
            notification(bounce("hard@example.org"), TopicArn="arn:aws:sns:eu-west-1:999:theirs")
        ),
        signed(notification(bounce("hard@example.org"), Timestamp=_now(-3600))),
        signed(notification(bounce("hard@example.org")), "3"),
    ):
        assert post(hooked, message).status_code == 401
    mismatched = signed(notification(bounce("hard@example.org")))
    assert (
        post(
            hooked, mismatched, **{"x-amz-sns-message-type": "SubscriptionConfirmation"}
        ).status_code
        == 401
    )
    assert status(hooked, "hard@example.org") == "active"
    assert fetcher.asked == []  # refused before any certificate was fetched


def test_a_replayed_message_changes_nothing(hooked: Live) -> None:
    message = signed(notification(bounce("hard@example.org")))
    assert post(hooked, message).json()["changed"] == 1
    hooked.store.subscribers.set_status(
        hooked.store.subscribers.get_by_email("hard@example.org")["id"], "active", actor="operator"
    )
    again = post(hooked, message)
    assert again.status_code == 200 and again.json()["replay"] is True
    assert status(hooked, "hard@example.org") == "active"


def test_a_subscription_is_confirmed_at_an_sns_url_only(hooked: Live, fetcher: Fetcher) -> None:
    confirmation = {
        "Type": "SubscriptionConfirmation",
        "MessageId": str(uuid.uuid4()),
        "Token": "2336412f37fb687f5d51e6e2425dacbba9e4f6ff3f2c2f8c1ff8d3e1c2",
        "TopicArn": TOPIC,
        "Message": f"You have chosen to subscribe to the topic {TOPIC}.",
        "SubscribeURL": SUBSCRIBE_URL,
        "Timestamp": _now(),
    }
    answer = post(hooked, signed(confirmation, "2"))
    assert answer.status_code == 200 and answer.json() == {"ok": True, "confirmed": TOPIC}
    assert fetcher.asked == [CERT_URL, SUBSCRIBE_URL]

    elsewhere = {
        **confirmation,
        "MessageId": str(uuid.uuid4()),
        "SubscribeURL": "https://evil.example/?Action=ConfirmSubscription",
    }
    answer = post(hooked, signed(elsewhere, "2"))
    assert answer.status_code == 502 and fetcher.asked == [CERT_URL, SUBSCRIBE_URL]


def test_unsubscribe_confirmation_is_acknowledged(hooked: Live) -> None:
    message = {
        "Type": "UnsubscribeConfirmation",
        "MessageId": str(uuid.uuid4()),
        "Token": "2336412f37fb687f5d51e6e2425dacbba9e4f6ff3f2c2f8c1ff8d3e1c2",
        "TopicArn": TOPIC,
        "Message": "You have chosen to deactivate subscription.",
        "SubscribeURL": SUBSCRIBE_URL,
        "Timestamp": _now(),
    }
    answer = post(hooked, signed(message))
    assert answer.status_code == 200 and answer.json()["unsubscribed"] == TOPIC


def test_off_until_a_topic_is_set(env: dict[str, str], fetcher: Fetcher) -> None:
    with serving(load_settings({**env, **WEB_ENV}, env_file=None)) as live:
        live.app.extensions["sns"] = SnsTrust(get=fetcher)
        assert post(live, signed(notification(bounce("hard@example.org")))).status_code == 404
    assert fetcher.asked == []


def test_not_json_is_a_clear_400(hooked: Live) -> None:
    answer = hooked.client.post("/webhooks/ses", content=b"not json at all")
    assert answer.status_code == 400 and answer.json()["ok"] is False
