"""`POST /webhooks/<provider>`: hard bounces and complaints reported by the email APIs.

Each provider is checked the way it documents, before its body is read as events:
- Postmark: HTTP basic auth, user and password embedded in the webhook URL.
- SendGrid: Signed Event Webhook, ECDSA P-256 / SHA-256 over timestamp + raw body, key from
  the dashboard (base64 DER), headers X-Twilio-Email-Event-Webhook-Signature / -Timestamp.
- Mailgun: `signature` object in the JSON body, hex HMAC-SHA256 of timestamp + token with
  the webhook signing key.
- Resend: Svix headers (svix-id, svix-timestamp, svix-signature "v1,<base64>"), HMAC-SHA256 of
  "id.timestamp.body" with the base64 secret after `whsec_`.
- SES: SNS messages (`/webhooks/ses`, its own route below): the SNS signature (subscribers/sns.py)
  from one of NEWSLETTER_SES_SNS_TOPIC_ARNS, each MessageId taken once.
A provider whose credential is not configured has no webhook (404): nothing unauthenticated
ever changes a subscriber.

Replays: a signed request is valid for 15 minutes, and within them each verifier names what the
provider promises is unique per delivery (Mailgun's token, Svix's message id, SendGrid's
timestamp and body). That `Receipt` is recorded in SQLite (`store.receipts`) in the same
transaction that acts on the events, so a second request with it changes nothing (Mailgun signs
the token and timestamp, not the body: without this one captured signature would carry any
events). Postmark's basic auth has no such value; its events are idempotent.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key, load_pem_public_key
from flask import Blueprint, Request, Response, abort, current_app, jsonify, request

from newsletter.readers.subscriptions import record_provider_event
from newsletter.settings import Settings
from subscribers import sns
from subscribers.app import web

log = logging.getLogger(__name__)
blueprint = Blueprint("webhooks", __name__)

#: signed requests older (or newer) than this are refused as replays
TOLERANCE_S = 15 * 60

Event = tuple[str, str, str]  # address, bounced | complained, reason


class Unauthorised(Exception):
    pass


@dataclass(frozen=True)
class Receipt:
    """What makes one signed delivery unique, and until when its signature is accepted."""

    key: str
    expires_at: float


def _receipt(provider: str, unique: str, timestamp: str) -> Receipt:
    return Receipt(f"{provider}:{unique}", int(timestamp) + TOLERANCE_S + 60)


@blueprint.post("/webhooks/<provider>")
def receive(provider: str) -> tuple[Response, int]:
    w = web()
    handler = PROVIDERS.get(provider)
    if handler is None or not handler[0](w.settings):
        abort(404, description=f"no webhook for {provider!r} here")
    _, verify, parse = handler
    try:
        receipt = verify(w.settings, request)
    except Unauthorised as exc:
        log.warning("webhook %s refused: %s", provider, exc)
        response = jsonify(ok=False, error="not authorised")
        if provider == "postmark":
            response.headers["WWW-Authenticate"] = 'Basic realm="webhooks"'
        return response, 401
    try:
        payload = json.loads(request.get_data())
        events = parse(payload)
    except (ValueError, KeyError, TypeError, AttributeError):
        return jsonify(ok=False, error="not a JSON event payload this webhook understands"), 400
    store = w.store
    with store.subscribers.writing():
        if receipt is not None and not store.receipts.first_time(receipt.key, receipt.expires_at):
            log.warning("webhook %s: a replayed delivery (%s) was ignored", provider, receipt.key)
            return jsonify(ok=True, events=len(events), changed=0, replay=True), 200
        changed = sum(
            record_provider_event(store, email, status, provider=provider, reason=reason)
            for email, status, reason in events
            if isinstance(email, str) and email
        )
    return jsonify(ok=True, events=len(events), changed=changed), 200


def _fresh(timestamp: str) -> None:
    try:
        age = abs(time.time() - int(timestamp))
    except ValueError:
        raise Unauthorised("timestamp is not a number") from None
    if age > TOLERANCE_S:
        raise Unauthorised("timestamp outside the tolerance window")


# --- Postmark --------------------------------------------------------------------------------


def _postmark_verify(settings: Settings, req: Request) -> Receipt | None:
    auth = req.authorization
    if auth is None or auth.type != "basic":
        raise Unauthorised("no basic auth")
    user_ok = hmac.compare_digest(
        (auth.username or "").encode(), settings.postmark_webhook_user.encode()
    )
    password_ok = hmac.compare_digest(
        (auth.password or "").encode(), settings.postmark_webhook_password.encode()
    )
    if not (user_ok and password_ok):
        raise Unauthorised("wrong basic auth")
    return None


POSTMARK_HARD = {"HardBounce", "BadEmailAddress", "ManuallyDeactivated"}


def _postmark_parse(payload: Any) -> list[Event]:
    record = payload.get("RecordType")
    if record == "SpamComplaint" or payload.get("Type") == "SpamComplaint":
        return [(payload["Email"], "complained", "Postmark spam complaint")]
    if record == "Bounce" and payload.get("Type") in POSTMARK_HARD:
        return [(payload["Email"], "bounced", str(payload.get("Description") or payload["Type"]))]
    return []


# --- SendGrid --------------------------------------------------------------------------------


def _sendgrid_key(text: str) -> ec.EllipticCurvePublicKey:
    if "BEGIN PUBLIC KEY" in text:
        key = load_pem_public_key(text.encode())
    else:
        key = load_der_public_key(base64.b64decode(text))
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise Unauthorised("SENDGRID_WEBHOOK_PUBLIC_KEY is not an EC public key")
    return key


def _sendgrid_verify(settings: Settings, req: Request) -> Receipt:
    signature = req.headers.get("X-Twilio-Email-Event-Webhook-Signature", "")
    timestamp = req.headers.get("X-Twilio-Email-Event-Webhook-Timestamp", "")
    if not signature or not timestamp:
        raise Unauthorised("signature headers missing")
    _fresh(timestamp)
    try:
        key = _sendgrid_key(settings.sendgrid_webhook_key)
        key.verify(
            base64.b64decode(signature),
            timestamp.encode() + req.get_data(),
            ec.ECDSA(hashes.SHA256()),
        )
    except (InvalidSignature, ValueError, binascii.Error):
        raise Unauthorised("bad signature") from None
    # what is signed, not the signature: an ECDSA signature has a second valid form
    signed = hashlib.sha256(timestamp.encode() + b"." + req.get_data()).hexdigest()
    return _receipt("sendgrid", signed, timestamp)


def _sendgrid_parse(payload: Any) -> list[Event]:
    events: list[Event] = []
    for event in payload:
        kind = event.get("event")
        if kind == "bounce" and event.get("type", "bounce") == "bounce":
            events.append((event["email"], "bounced", str(event.get("reason", "bounce"))))
        elif kind == "dropped" and "bounce" in str(event.get("reason", "")).lower():
            events.append((event["email"], "bounced", str(event["reason"])))
        elif kind == "spamreport":
            events.append((event["email"], "complained", "SendGrid spam report"))
    return events


# --- Mailgun ---------------------------------------------------------------------------------


def _mailgun_verify(settings: Settings, req: Request) -> Receipt:
    try:
        signature = json.loads(req.get_data())["signature"]
        timestamp, token, given = (
            str(signature["timestamp"]),
            str(signature["token"]),
            str(signature["signature"]),
        )
    except (ValueError, KeyError, TypeError):
        raise Unauthorised("no signature object") from None
    _fresh(timestamp)
    expected = hmac.new(
        settings.mailgun_webhook_key.encode(), (timestamp + token).encode(), hashlib.sha256
    ).hexdigest()
    if not hmac.compare_digest(expected.encode(), given.encode()):
        raise Unauthorised("bad signature")
    # Mailgun: "cache the token and refuse any subsequent request with the same token"
    return _receipt("mailgun", token, timestamp)


def _mailgun_parse(payload: Any) -> list[Event]:
    data = payload["event-data"]
    kind = data.get("event")
    if kind == "failed" and data.get("severity") == "permanent":
        status = data.get("delivery-status") or {}
        return [(data["recipient"], "bounced", str(status.get("description") or "failed"))]
    if kind == "complained":
        return [(data["recipient"], "complained", "Mailgun complaint")]
    return []


# --- Resend (Svix) ---------------------------------------------------------------------------


def _resend_verify(settings: Settings, req: Request) -> Receipt:
    msg_id = req.headers.get("svix-id", "")
    timestamp = req.headers.get("svix-timestamp", "")
    signatures = req.headers.get("svix-signature", "")
    if not (msg_id and timestamp and signatures):
        raise Unauthorised("svix headers missing")
    _fresh(timestamp)
    secret = settings.resend_webhook_secret.removeprefix("whsec_")
    try:
        key = base64.b64decode(secret)
    except (ValueError, binascii.Error):
        raise Unauthorised("RESEND_WEBHOOK_SECRET is not base64 after whsec_") from None
    signed = msg_id.encode() + b"." + timestamp.encode() + b"." + req.get_data()
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest())
    for item in signatures.split():
        version, _, value = item.partition(",")
        if version == "v1" and hmac.compare_digest(value.encode(), expected):
            return _receipt("resend", msg_id, timestamp)  # Svix: unique per message
    raise Unauthorised("bad signature")


def _resend_parse(payload: Any) -> list[Event]:
    kind = payload.get("type")
    data = payload.get("data") or {}
    recipients = data.get("to") or []
    if isinstance(recipients, str):
        recipients = [recipients]
    if kind == "email.bounced":
        bounce = data.get("bounce") or {}
        if bounce.get("type", "Permanent") != "Permanent":
            return []
        reason = str(bounce.get("message") or "bounced")
        return [(address, "bounced", reason) for address in recipients]
    if kind == "email.complained":
        return [(address, "complained", "Resend complaint") for address in recipients]
    return []


Handler = tuple[
    Callable[[Settings], bool],
    Callable[[Settings, Request], Receipt | None],
    Callable[[Any], list[Event]],
]

PROVIDERS: dict[str, Handler] = {
    "postmark": (
        lambda s: bool(s.postmark_webhook_user and s.postmark_webhook_password),
        _postmark_verify,
        _postmark_parse,
    ),
    "sendgrid": (lambda s: bool(s.sendgrid_webhook_key), _sendgrid_verify, _sendgrid_parse),
    "mailgun": (lambda s: bool(s.mailgun_webhook_key), _mailgun_verify, _mailgun_parse),
    "resend": (lambda s: bool(s.resend_webhook_secret), _resend_verify, _resend_parse),
}


# --- Amazon SES (through SNS) ----------------------------------------------------------------


@blueprint.post("/webhooks/ses")
def receive_ses() -> tuple[Response, int]:
    """SES bounce and complaint notifications, delivered by SNS; also SNS's subscription
    confirmation (confirmed by fetching its SubscribeURL)."""
    w = web()
    if not w.settings.ses_topic_arns:
        abort(404, description="no webhook for 'ses' here")
    try:
        message = json.loads(request.get_data())
        if not isinstance(message, dict):
            raise ValueError("not an object")
    except ValueError:
        return jsonify(ok=False, error="not an SNS message"), 400
    trust: sns.SnsTrust = current_app.extensions.setdefault("sns", sns.SnsTrust())
    try:
        sent_at = _sns_check(w.settings, request, message, trust)
    except (sns.Refused, Unauthorised) as exc:
        log.warning("webhook ses refused: %s", exc)
        return jsonify(ok=False, error="not authorised"), 401
    kind = message["Type"]
    if kind == "SubscriptionConfirmation":
        try:  # a network call: made before the write lock is taken, and harmless twice
            sns.confirm(message, trust)
        except sns.Refused as exc:
            log.warning("webhook ses: subscription not confirmed: %s", exc)
            return jsonify(ok=False, error="the subscription could not be confirmed"), 502
    events = _ses_parse(message) if kind == "Notification" else []
    store = w.store
    with store.subscribers.writing():
        key = f"ses:{message.get('MessageId')}"
        if not store.receipts.first_time(key, sent_at + TOLERANCE_S + 60):
            log.warning("webhook ses: a replayed delivery (%s) was ignored", key)
            return jsonify(ok=True, events=len(events), changed=0, replay=True), 200
        changed = sum(
            record_provider_event(store, email, status, provider="ses", reason=reason)
            for email, status, reason in events
            if isinstance(email, str) and email
        )
    if kind == "SubscriptionConfirmation":
        log.info("webhook ses: confirmed the subscription to %s", message["TopicArn"])
        return jsonify(ok=True, confirmed=message["TopicArn"]), 200
    if kind == "UnsubscribeConfirmation":
        log.warning("webhook ses: SNS unsubscribed this endpoint from %s", message["TopicArn"])
        return jsonify(ok=True, unsubscribed=message["TopicArn"]), 200
    return jsonify(ok=True, events=len(events), changed=changed), 200


def _sns_check(
    settings: Settings, req: Request, message: dict[str, Any], trust: sns.SnsTrust
) -> float:
    """Everything cheap first (type, topic, age), then the signature; the message's time."""
    kind = message.get("Type")
    header = req.headers.get("x-amz-sns-message-type")
    if header is not None and header != kind:
        raise Unauthorised(f"x-amz-sns-message-type {header!r} but the body says {kind!r}")
    if message.get("TopicArn") not in settings.ses_topic_arns:
        raise Unauthorised(f"TopicArn {message.get('TopicArn')!r} is not one we subscribed to")
    sent_at = sns.timestamp(message)
    if abs(time.time() - sent_at) > TOLERANCE_S:
        raise Unauthorised("timestamp outside the tolerance window")
    sns.verify(message, trust)
    return sent_at


def _ses_parse(message: dict[str, Any]) -> list[Event]:
    """SES's notification (`notificationType`) or event publishing (`eventType`) JSON inside
    the SNS Message: permanent bounces and complaints; everything else is ignored."""
    try:
        event = json.loads(message.get("Message") or "")
    except ValueError:
        return []
    if not isinstance(event, dict):
        return []
    kind = event.get("notificationType") or event.get("eventType")
    if kind == "Bounce":
        bounce = event.get("bounce") or {}
        if bounce.get("bounceType") != "Permanent":
            return []
        return [
            (
                str(r.get("emailAddress") or ""),
                "bounced",
                str(r.get("diagnosticCode") or bounce.get("bounceSubType") or "Permanent bounce"),
            )
            for r in bounce.get("bouncedRecipients") or []
            if isinstance(r, dict)
        ]
    if kind == "Complaint":
        complaint = event.get("complaint") or {}
        if complaint.get("complaintFeedbackType") == "not-spam":
            return []
        reason = f"SES complaint ({complaint.get('complaintFeedbackType') or 'unspecified'})"
        return [
            (str(r.get("emailAddress") or ""), "complained", reason)
            for r in complaint.get("complainedRecipients") or []
            if isinstance(r, dict)
        ]
    return []
