"""Amazon SNS messages posted to an HTTP(S) endpoint: signature check and subscription confirm.

The signature (SignatureVersion 1: SHA1withRSA, 2: SHA256withRSA) covers "Name\\nvalue\\n" for
a fixed list of fields per message type, in order. The public key comes from the message's
SigningCertURL, fetched only over https from a host of the SNS pattern
(sns.<region>.amazonaws.com, .cn in China) and cached; a SubscribeURL must match the same
pattern before it is fetched. SNS vouches that SNS sent a message, not that it came from our
topic: the caller checks TopicArn against the ones it expects before anything else.
"""

from __future__ import annotations

import base64
import binascii
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

#: the documented string to sign: these fields, in this order (Subject only when present)
SIGNED_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
}
SIGNED_FIELDS["UnsubscribeConfirmation"] = SIGNED_FIELDS["SubscriptionConfirmation"]
HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {"1": hashes.SHA1, "2": hashes.SHA256}
SNS_HOST = re.compile(r"^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$")
MAX_FETCH = 64 * 1024


class Refused(Exception):
    """The message is not one SNS signed, or asks us to fetch from where we must not."""


def _https_get(url: str) -> bytes:
    """GET over verified TLS, no redirects (a redirect could leave the SNS hosts), size capped."""
    import httpx

    try:
        with httpx.stream("GET", url, timeout=10.0, follow_redirects=False) as response:
            if response.status_code != 200:
                raise Refused(f"{url}: HTTP {response.status_code}")
            body = b""
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_FETCH:
                    raise Refused(f"{url}: larger than {MAX_FETCH} bytes")
            return body
    except httpx.HTTPError as exc:
        raise Refused(f"{url}: {type(exc).__name__}") from None


@dataclass
class SnsTrust:
    """Where certificates and subscription URLs may come from and how they are fetched.

    Production uses the defaults. Tests pass their own `get` (and may widen `host` to a test
    server): this is code, so no setting can loosen it by accident.
    """

    host: re.Pattern[str] = SNS_HOST
    get: Callable[[str], bytes] = _https_get
    _keys: dict[str, rsa.RSAPublicKey] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def check(self, url: str, what: str, *, suffix: str = "") -> str:
        parts = urlsplit(url)
        if parts.scheme != "https" or not self.host.match(parts.hostname or ""):
            raise Refused(f"{what} is not an https URL on an SNS host: {url!r}")
        if parts.port not in (None, 443) or parts.username or parts.password:
            raise Refused(f"{what} has a port or credentials: {url!r}")
        if suffix and not parts.path.endswith(suffix):
            raise Refused(f"{what} does not end in {suffix}: {url!r}")
        return url

    def public_key(self, url: str) -> rsa.RSAPublicKey:
        with self._lock:
            if url in self._keys:
                return self._keys[url]
        self.check(url, "SigningCertURL", suffix=".pem")
        try:
            certificate = x509.load_pem_x509_certificate(self.get(url))
        except ValueError:
            raise Refused(f"SigningCertURL {url!r} is not a PEM certificate") from None
        now = datetime.now(UTC)
        if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
            raise Refused(f"the signing certificate at {url!r} is not valid now")
        key = certificate.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise Refused(f"the signing certificate at {url!r} has no RSA key")
        with self._lock:
            self._keys[url] = key
        return key


def string_to_sign(message: dict[str, Any]) -> bytes:
    names = SIGNED_FIELDS.get(str(message.get("Type")))
    if names is None:
        raise Refused(f"unknown SNS message type {message.get('Type')!r}")
    parts = []
    for name in names:
        if name not in message:
            if name == "Subject":
                continue
            raise Refused(f"the message has no {name}")
        parts.append(f"{name}\n{message[name]}\n")
    return "".join(parts).encode("utf-8")


def verify(message: dict[str, Any], trust: SnsTrust) -> None:
    """Raise Refused unless SNS signed exactly this message."""
    algorithm = HASHES.get(str(message.get("SignatureVersion")))
    if algorithm is None:
        raise Refused(f"unsupported SignatureVersion {message.get('SignatureVersion')!r}")
    signed = string_to_sign(message)
    try:
        signature = base64.b64decode(str(message.get("Signature", "")), validate=True)
    except (ValueError, binascii.Error):
        raise Refused("the Signature is not base64") from None
    key = trust.public_key(str(message.get("SigningCertURL", "")))
    try:
        key.verify(signature, signed, padding.PKCS1v15(), algorithm())
    except InvalidSignature:
        raise Refused("bad signature") from None


def timestamp(message: dict[str, Any]) -> float:
    try:
        moment = datetime.fromisoformat(str(message["Timestamp"]).replace("Z", "+00:00"))
    except (KeyError, ValueError):
        raise Refused("the message has no valid Timestamp") from None
    if moment.tzinfo is None:
        raise Refused("the Timestamp has no timezone")
    return moment.timestamp()


def confirm(message: dict[str, Any], trust: SnsTrust) -> None:
    """Confirm a subscription: GET its SubscribeURL (an SNS host's only)."""
    trust.get(trust.check(str(message.get("SubscribeURL", "")), "SubscribeURL"))
