"""Provider webhooks over real HTTP, signed the way each provider documents it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Iterator

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from test_web_live import WEB_ENV, Live, serving

from newsletter.settings import load_settings

SENDGRID_PRIVATE = ec.generate_private_key(ec.SECP256R1())
SENDGRID_PUBLIC = base64.b64encode(
    SENDGRID_PRIVATE.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
).decode()
MAILGUN_KEY = "key-mailgun-signing-0123456789"
RESEND_SECRET = "whsec_" + base64.b64encode(b"resend-secret-0123456789abcdef").decode()


@pytest.fixture
def hooked(env: dict[str, str]) -> Iterator[Live]:
    settings = load_settings(
        {
            **env,
            **WEB_ENV,
            "POSTMARK_WEBHOOK_USERNAME": "postmark",
            "POSTMARK_WEBHOOK_PASSWORD": "hook-password",
            "SENDGRID_WEBHOOK_PUBLIC_KEY": SENDGRID_PUBLIC,
            "MAILGUN_WEBHOOK_SIGNING_KEY": MAILGUN_KEY,
            "RESEND_WEBHOOK_SECRET": RESEND_SECRET,
        },
        env_file=None,
    )
    with serving(settings) as live:
        for email in ("hard@example.org", "spam@example.org", "soft@example.org"):
            live.store.subscribers.add(email, name=None, status="active", actor="test")
        yield live


# --- payloads as the providers document them --------------------------------------------------


def postmark_bounce(email: str, kind: str = "HardBounce") -> dict:
    return {
        "RecordType": "Bounce",
        "ID": 42,
        "Type": kind,
        "TypeCode": 1 if kind == "HardBounce" else 4096,
        "Name": "Hard bounce",
        "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
        "Description": "The server was unable to deliver your message.",
        "Email": email,
        "BouncedAt": "2026-06-10T13:28:10Z",
        "Inactive": True,
        "CanActivate": True,
        "MessageStream": "outbound",
    }


def sendgrid_post(live: Live, events: list[dict], *, key=SENDGRID_PRIVATE) -> httpx.Response:
    body = json.dumps(events).encode()
    timestamp = str(int(time.time()))
    signature = key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return httpx.post(
        live.url + "/webhooks/sendgrid",
        content=body,
        headers={
            "Content-Type": "application/json",
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
        },
    )


def mailgun_signature(*, key: str = MAILGUN_KEY, age: int = 0) -> dict:
    """A `signature` object as Mailgun documents it: a fresh 50-character token each time."""
    timestamp, token = str(int(time.time()) - age), secrets.token_hex(25)
    signature = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    return {"timestamp": timestamp, "token": token, "signature": signature}


def mailgun_post(
    live: Live,
    event_data: dict,
    *,
    key: str = MAILGUN_KEY,
    age: int = 0,
    signature: dict | None = None,
) -> httpx.Response:
    payload = {
        "signature": signature or mailgun_signature(key=key, age=age),
        "event-data": event_data,
    }
    return httpx.post(live.url + "/webhooks/mailgun", json=payload)


def resend_post(live: Live, payload: dict, *, secret: str = RESEND_SECRET) -> httpx.Response:
    body = json.dumps(payload).encode()
    msg_id, timestamp = f"msg_{secrets.token_urlsafe(18)}", str(int(time.time()))
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    signature = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return httpx.post(
        live.url + "/webhooks/resend",
        content=body,
        headers={
            "Content-Type": "application/json",
            "svix-id": msg_id,
            "svix-timestamp": timestamp,
            "svix-signature": f"v1,bm90LXRoaXMtb25l v1,{signature}",
        },
    )


# --- tests ------------------------------------------------------------------------------------


def test_postmark_hard_bounce_and_complaint_with_basic_auth(hooked: Live) -> None:
    auth = ("postmark", "hook-password")
    url = hooked.url + "/webhooks/postmark"
    assert httpx.post(url, json=postmark_bounce("hard@example.org"), auth=auth).status_code == 200
    soft = httpx.post(url, json=postmark_bounce("soft@example.org", "SoftBounce"), auth=auth)
    assert soft.status_code == 200
    complaint = {
        "RecordType": "SpamComplaint",
        "Type": "SpamComplaint",
        "TypeCode": 512,
        "Email": "spam@example.org",
    }
    assert httpx.post(url, json=complaint, auth=auth).status_code == 200
    assert hooked.status("hard@example.org") == "bounced"
    assert hooked.status("spam@example.org") == "complained"
    assert hooked.status("soft@example.org") == "active"


def test_postmark_without_the_right_password_changes_nothing(hooked: Live) -> None:
    url = hooked.url + "/webhooks/postmark"
    payload = postmark_bounce("hard@example.org")
    assert httpx.post(url, json=payload).status_code == 401
    assert httpx.post(url, json=payload, auth=("postmark", "guess")).status_code == 401
    assert hooked.status("hard@example.org") == "active"


def test_sendgrid_signed_events(hooked: Live) -> None:
    events = [
        {"email": "hard@example.org", "event": "bounce", "type": "bounce", "reason": "550 5.1.1"},
        {"email": "soft@example.org", "event": "bounce", "type": "blocked", "reason": "421"},
        {"email": "spam@example.org", "event": "spamreport", "timestamp": 1700000000},
        {"email": "soft@example.org", "event": "delivered"},
    ]
    response = sendgrid_post(hooked, events)
    assert response.status_code == 200 and response.json()["changed"] == 2
    assert hooked.status("hard@example.org") == "bounced"
    assert hooked.status("spam@example.org") == "complained"
    assert hooked.status("soft@example.org") == "active"


def test_sendgrid_signed_by_another_key_is_refused(hooked: Live) -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    events = [{"email": "hard@example.org", "event": "bounce", "type": "bounce"}]
    assert sendgrid_post(hooked, events, key=other).status_code == 401
    assert hooked.status("hard@example.org") == "active"


def test_mailgun_permanent_failure_and_complaint(hooked: Live) -> None:
    failed = {
        "event": "failed",
        "severity": "permanent",
        "recipient": "hard@example.org",
        "delivery-status": {"code": 550, "description": "No such mailbox"},
    }
    temporary = {**failed, "severity": "temporary", "recipient": "soft@example.org"}
    complained = {"event": "complained", "recipient": "spam@example.org"}
    for data in (failed, temporary, complained):
        assert mailgun_post(hooked, data).status_code == 200
    assert hooked.status("hard@example.org") == "bounced"
    assert hooked.status("soft@example.org") == "active"
    assert hooked.status("spam@example.org") == "complained"


def test_mailgun_wrong_key_or_replayed_signature_is_refused(hooked: Live) -> None:
    data = {"event": "failed", "severity": "permanent", "recipient": "hard@example.org"}
    assert mailgun_post(hooked, data, key="key-wrong").status_code == 401
    assert mailgun_post(hooked, data, age=3600).status_code == 401
    assert hooked.status("hard@example.org") == "active"


def test_resend_svix_signed_bounce_and_complaint(hooked: Live) -> None:
    bounce = {
        "type": "email.bounced",
        "created_at": "2026-06-10T13:28:10.000Z",
        "data": {
            "email_id": "56761188-7520-42d8-8898-ff6fc54ce618",
            "to": ["hard@example.org"],
            "bounce": {"message": "Mailbox does not exist", "type": "Permanent"},
        },
    }
    complaint = {
        "type": "email.complained",
        "data": {"email_id": "x", "to": ["spam@example.org"]},
    }
    assert resend_post(hooked, bounce).status_code == 200
    assert resend_post(hooked, complaint).status_code == 200
    assert hooked.status("hard@example.org") == "bounced"
    assert hooked.status("spam@example.org") == "complained"


def test_resend_with_the_wrong_secret_is_refused(hooked: Live) -> None:
    wrong = "whsec_" + base64.b64encode(b"not the secret").decode()
    bounce = {"type": "email.bounced", "data": {"to": ["hard@example.org"]}}
    assert resend_post(hooked, bounce, secret=wrong).status_code == 401
    assert hooked.status("hard@example.org") == "active"


def test_unconfigured_or_unknown_provider_has_no_webhook(live_default: Live) -> None:
    for provider in ("postmark", "sendgrid", "mailgun", "resend", "nosuch"):
        response = httpx.post(live_default.url + f"/webhooks/{provider}", json={})
        assert response.status_code == 404, provider


def test_a_complaint_is_never_downgraded_and_nobody_is_mailed_after(hooked: Live) -> None:
    auth = ("postmark", "hook-password")
    url = hooked.url + "/webhooks/postmark"
    complaint = {"RecordType": "SpamComplaint", "Email": "spam@example.org"}
    httpx.post(url, json=complaint, auth=auth)
    httpx.post(url, json=postmark_bounce("spam@example.org"), auth=auth)
    assert hooked.status("spam@example.org") == "complained"
    assert hooked.sign_up("spam@example.org").status_code == 200
    assert hooked.mails("spam@example.org") == []


@pytest.fixture
def live_default(env: dict[str, str]) -> Iterator[Live]:
    with serving(load_settings(env, env_file=None)) as live:
        yield live


# --- replays ----------------------------------------------------------------------------------


def test_a_captured_mailgun_signature_cannot_carry_other_events(hooked: Live) -> None:
    """Mailgun signs timestamp + token, not the body: the token is remembered instead."""
    captured = mailgun_signature()
    genuine = {"event": "failed", "severity": "permanent", "recipient": "hard@example.org"}
    assert mailgun_post(hooked, genuine, signature=captured).json()["changed"] == 1
    for victim in ("spam@example.org", "soft@example.org", "hard@example.org"):
        forged = {"event": "complained", "recipient": victim}
        answer = mailgun_post(hooked, forged, signature=captured)
        assert answer.status_code == 200 and answer.json() == {
            "ok": True, "events": 1, "changed": 0, "replay": True
        }  # fmt: skip
    assert hooked.status("spam@example.org") == "active"
    assert hooked.status("soft@example.org") == "active"
    assert hooked.status("hard@example.org") == "bounced"  # not downgraded to complained


def reactivate(live: Live, email: str) -> None:
    row = live.store.subscribers.get_by_email(email)
    assert row is not None
    live.store.subscribers.set_status(row["id"], "active", actor="test")


def test_a_replayed_resend_delivery_changes_nothing(hooked: Live) -> None:
    body = json.dumps({"type": "email.complained", "data": {"to": ["spam@example.org"]}})
    msg_id, timestamp = "msg_replayed", str(int(time.time()))
    key = base64.b64decode(RESEND_SECRET.removeprefix("whsec_"))
    signed = base64.b64encode(
        hmac.new(key, f"{msg_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    ).decode()
    headers = {
        "Content-Type": "application/json",
        "svix-id": msg_id,
        "svix-timestamp": timestamp,
        "svix-signature": f"v1,{signed}",
    }
    url = hooked.url + "/webhooks/resend"
    assert httpx.post(url, content=body, headers=headers).json()["changed"] == 1
    reactivate(hooked, "spam@example.org")  # so a replay that acted would show
    again = httpx.post(url, content=body, headers=headers)
    assert again.status_code == 200 and again.json()["replay"] is True
    assert hooked.status("spam@example.org") == "active"
    other = body.replace("spam@", "soft@")  # the same headers on another body: not signed
    assert httpx.post(url, content=other, headers=headers).status_code == 401


def test_a_replayed_sendgrid_delivery_changes_nothing(hooked: Live) -> None:
    events = [{"email": "spam@example.org", "event": "spamreport"}]
    body = json.dumps(events).encode()
    timestamp = str(int(time.time()))
    signature = SENDGRID_PRIVATE.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    headers = {
        "Content-Type": "application/json",
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
    }
    url = hooked.url + "/webhooks/sendgrid"
    assert httpx.post(url, content=body, headers=headers).json()["changed"] == 1
    reactivate(hooked, "spam@example.org")  # so a replay that acted would show
    # the same signed bytes again, and again with a fresh signature over the same bytes
    resigned = SENDGRID_PRIVATE.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    for sig in (signature, resigned):
        replay = {
            **headers,
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(sig).decode(),
        }
        answer = httpx.post(url, content=body, headers=replay)
        assert answer.status_code == 200 and answer.json()["replay"] is True
    assert hooked.status("spam@example.org") == "active"


def test_receipts_expire_and_a_failed_request_leaves_none(store) -> None:
    receipts = store.receipts
    assert receipts.first_time("mailgun:a", 1000.0, now=500.0)
    assert not receipts.first_time("mailgun:a", 1000.0, now=600.0)
    assert receipts.first_time("mailgun:b", 2000.0, now=1500.0)  # and "a" is pruned
    rows = store.db.execute("SELECT key FROM webhook_receipts ORDER BY key").fetchall()
    assert rows == [("mailgun:b",)]
    try:
        with store.subscribers.writing():
            assert receipts.first_time("resend:c", 3000.0, now=1500.0)
            raise RuntimeError("the events could not be recorded")
    except RuntimeError:
        pass
    assert receipts.first_time("resend:c", 3000.0, now=1500.0)  # the provider's retry is taken
