"""Authentication: the DKIM key loads, the message signs and verifies, the right headers are
signed (RFC 8058 needs List-Unsubscribe-Post under the signature); and key generation.
"""

from __future__ import annotations

import base64
import os
import re
from dataclasses import dataclass
from pathlib import Path

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from newsletter.checks.parsed import Parsed
from newsletter.checks.report import Finding, error, info, warning
from newsletter.delivery.dkim import DkimSigner
from newsletter.errors import NewsletterError

API_SENDERS = ("postmark", "sendgrid", "mailgun", "resend")
_SELECTOR = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,61}[A-Za-z0-9])?")
_DOMAIN = re.compile(
    r"(?=.{1,253}$)([A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}"
)


@dataclass(frozen=True)
class DkimConfig:
    key_file: Path
    selector: str
    domain: str


def dkim_config(settings: object) -> DkimConfig | None:
    """DKIM settings when the operator configured them (the setting names are the sender's)."""
    key_file = getattr(settings, "dkim_key_file", None)
    if not key_file:
        return None
    selector = getattr(settings, "dkim_selector", "") or ""
    domain = getattr(settings, "dkim_domain", "") or getattr(settings, "from_domain", "")
    return DkimConfig(Path(key_file), selector, domain)


def public_key_b64(key: rsa.RSAPrivateKey) -> str:
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode("ascii")


def dns_record(selector: str, domain: str, key: rsa.RSAPrivateKey) -> str:
    """The TXT record to publish, as a zone-file line."""
    value = f"v=DKIM1; k=rsa; p={public_key_b64(key)}"
    chunks = " ".join(f'"{value[i : i + 250]}"' for i in range(0, len(value), 250))
    return f"{selector}._domainkey.{domain}. IN TXT ( {chunks} )"


def load_key(path: Path) -> rsa.RSAPrivateKey:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise NewsletterError(f"DKIM key {path}: {exc.strerror or exc}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise NewsletterError(
            f"DKIM key {path}: not an unencrypted PEM private key ({exc})"
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise NewsletterError(f"DKIM key {path}: expected an RSA key, got {type(key).__name__}")
    return key


def check_dkim(
    message: Parsed, config: DkimConfig | None, from_domain: str, sender: str = "smtp"
) -> list[Finding]:
    if config is None and sender in API_SENDERS:
        return [
            info(
                "auth",
                f"DKIM is added by {sender} when it sends, not by this program",
                f"verify {from_domain} in {sender}'s dashboard and publish the DNS records it"
                " shows",
            )
        ]
    if config is None:
        return [
            info(
                "auth",
                "DKIM is not configured: Gmail and Yahoo require bulk mail to be signed",
                "run `newsletter dkim keygen --selector S --domain D`, publish the TXT record,"
                " and set NEWSLETTER_DKIM_KEY_FILE / _SELECTOR / _DOMAIN",
            )
        ]
    fix_config = "check NEWSLETTER_DKIM_KEY_FILE, NEWSLETTER_DKIM_SELECTOR, NEWSLETTER_DKIM_DOMAIN"
    if not _SELECTOR.fullmatch(config.selector) or not _DOMAIN.fullmatch(config.domain):
        return [
            error(
                "auth",
                f"DKIM selector {config.selector!r} or domain {config.domain!r} is not valid",
                fix_config,
            )
        ]
    try:
        key = load_key(config.key_file)
    except NewsletterError as exc:
        return [error("auth", str(exc), fix_config)]
    found: list[Finding] = []
    if key.key_size < 1024:
        return [error("auth", f"DKIM key is {key.key_size} bits: receivers reject it", "use 2048")]
    if key.key_size < 2048:
        found.append(warning("auth", f"DKIM key is {key.key_size} bits", "use a 2048-bit key"))
    record = f"v=DKIM1; k=rsa; p={public_key_b64(key)}".encode()
    # the signer the SMTP sender uses, so the check sees exactly what receivers will
    crlf = re.sub(rb"(?<!\r)\n", b"\r\n", message.raw)
    try:
        signature = DkimSigner(key, config.selector, config.domain).signature_header(crlf)
    except (ValueError, dkim.DKIMException) as exc:
        return [error("auth", f"the message does not sign with DKIM: {exc}", fix_config)]
    signed = signature + crlf
    verified = dkim.verify(signed, dnsfunc=lambda _name, timeout=5: record)
    if not verified:
        return [error("auth", "the DKIM signature does not verify against its own public key")]
    # a signer may list absent headers in h= (so they cannot be added later): count present ones
    present = {name.lower() for name in message.mime}
    names = _signed_header_names(signature) & present
    if "list-unsubscribe-post" not in names:
        found.append(
            error(
                "auth",
                "List-Unsubscribe-Post is not among the DKIM-signed headers (RFC 8058 needs it)",
                "sign it (newsletter.delivery.dkim.SIGNED_HEADERS lists it)",
            )
        )
    if not (from_domain == config.domain or from_domain.endswith("." + config.domain)):
        found.append(
            warning(
                "auth",
                f"DKIM domain {config.domain} does not align with the From domain {from_domain}",
                "sign with the From address's domain so DMARC passes",
            )
        )
    found.append(
        info(
            "auth",
            f"DKIM signs and verifies ({key.key_size}-bit key, {config.selector}._domainkey."
            f"{config.domain}; signed: {', '.join(sorted(names))})",
            "make sure the published TXT record matches `newsletter dkim keygen`'s output",
        )
    )
    return found


def _signed_header_names(signature: bytes) -> set[str]:
    unfolded = re.sub(rb"\r?\n[ \t]+", b" ", signature).decode("ascii", "replace")
    match = re.search(r"\bh=([^;]*)", unfolded)
    return {h.strip().lower() for h in (match[1] if match else "").split(":") if h.strip()}


@dataclass(frozen=True)
class KeyPair:
    key_file: Path
    record_file: Path
    record: str


def keygen(selector: str, domain: str, out_dir: Path, *, bits: int = 2048) -> KeyPair:
    """Write `<selector>.private` (0600) and `<selector>.txt`; never overwrite a key."""
    if not _SELECTOR.fullmatch(selector):
        raise NewsletterError(f"--selector: {selector!r} is not a valid DNS label")
    if not _DOMAIN.fullmatch(domain):
        raise NewsletterError(f"--domain: {domain!r} is not a domain name like example.org")
    out_dir.mkdir(parents=True, exist_ok=True)
    key_file = out_dir / f"{selector}.private"
    record_file = out_dir / f"{selector}.txt"
    for path in (key_file, record_file):
        if path.exists():
            raise NewsletterError(f"{path} exists: refusing to overwrite a DKIM key")
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    record = dns_record(selector, domain, key)
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    record_file.write_text(record + "\n", encoding="ascii")
    return KeyPair(key_file, record_file, record)
