"""One reader's message: RFC 5322 multipart/alternative with the list headers.

Two ways to the same bytes. `build_mime` uses the email package (~5 ms a message: it
quoted-printable-encodes 70 KB of HTML in pure Python). `MimeTemplate` encodes the dispatch's
bodies once, split at the per-subscriber slots, and fills each slot with its value encoded for
its position (HTML-escaped, then quoted-printable), so one message is a join of prebuilt bytes.
Every value that reaches a header is checked for CR/LF first, on both paths.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr, localtime, parseaddr
from functools import lru_cache

from newsletter.errors import SendError

POLICY = SMTP.clone(max_line_length=76)
CRLF = b"\r\n"
#: RFC 5322: header lines SHOULD stay within 78 characters and MUST within 998
FOLD_AT = 78
HARD_LIMIT = 998
#: RFC 2045: quoted-printable lines at most 76 characters, the soft break "=" included
QP_LINE = 76
_PHRASE_SPECIALS = set('()<>[]:;@\\,."')
#: headers whose value differs in every message: never cached
_PER_READER = frozenset({"To", "Message-ID", "List-Unsubscribe"})


@dataclass(frozen=True)
class Message:
    """What a sender needs: envelope, headers and both bodies (API senders use the parts)."""

    from_addr: str
    to_addr: str
    to_name: str
    subject: str
    html: str
    text: str
    message_id: str
    headers: dict[str, str] = field(default_factory=dict)
    tag: str = ""
    #: the prebuilt bodies this message was composed from (see `MimeTemplate`)
    prebuilt: Prebuilt | None = field(default=None, repr=False, compare=False)

    @property
    def to_header(self) -> str:
        return formataddr((self.to_name, self.to_addr)) if self.to_name else self.to_addr

    def as_bytes(self) -> bytes:
        """The whole message, CRLF line ends, ready for SMTP or a file."""
        fast = self.prebuilt
        # Identity, not equality: a copy with other bodies (dataclasses.replace) goes the slow way.
        if fast is not None and fast.html is self.html and fast.text is self.text:
            return fast.template.build(self, fast.values, fast.html_values)
        return build_mime(self).as_bytes(policy=POLICY)


@dataclass(frozen=True)
class Prebuilt:
    """The per-dispatch byte template and this reader's slot values."""

    template: MimeTemplate
    values: Mapping[str, str]
    html_values: Mapping[str, str]  # the same values, HTML-escaped
    html: str
    text: str


def check_header_value(name: str, value: str) -> str:
    if "\r" in value or "\n" in value or "\x00" in value:
        raise SendError(f"{name}: line breaks are not allowed in a header value")
    return value


def new_message_id(domain: str) -> str:
    return f"<{int(time.time())}.{secrets.token_hex(12)}@{domain}>"


def build_mime(message: Message) -> EmailMessage:
    """The reference build with the email package (the slow path, and what tests compare to)."""
    mime = EmailMessage(policy=POLICY)
    display, address = parseaddr(message.from_addr)
    local, _, domain = address.rpartition("@")
    mime["From"] = Address(check_header_value("From", display), local, domain)
    to_local, _, to_domain = message.to_addr.rpartition("@")
    mime["To"] = Address(
        check_header_value("name", message.to_name), check_header_value("To", to_local), to_domain
    )
    mime["Subject"] = check_header_value("Subject", message.subject)
    mime["Date"] = format_datetime(localtime())
    mime["Message-ID"] = check_header_value("Message-ID", message.message_id)
    for name, value in message.headers.items():
        mime[name] = check_header_value(name, value)
    mime.set_content(message.text, subtype="plain", charset="utf-8", cte="quoted-printable")
    mime.add_alternative(message.html, subtype="html", charset="utf-8", cte="quoted-printable")
    return mime


# -- the fast path ---------------------------------------------------------------------------


def _lf(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


def _normalise(text: str) -> str:
    """Line ends as the email package leaves them: LF only, and a final one."""
    text = _lf(text)
    return text if text.endswith("\n") else text + "\n"


def qp_encode(text: str) -> bytes:
    """Quoted-printable (RFC 2045) with CRLF line ends; the last line leaves room for a "="."""
    encoded = binascii.b2a_qp(text.encode("utf-8"), istext=True).replace(b"\n", CRLF)
    head, sep, last = encoded.rpartition(CRLF)
    if len(last) < QP_LINE:
        return encoded
    cut = QP_LINE - 3
    while last[cut - 1 : cut] == b"=" or last[cut - 2 : cut - 1] == b"=":
        cut -= 1  # never split an =XX escape
    return head + sep + last[:cut] + b"=" + CRLF + last[cut:]


@lru_cache(maxsize=512)  # the values every reader shares stay hot
def _qp_slot(value: str) -> bytes:
    """A slot value on lines of its own, soft breaks before and after (decoders drop them)."""
    return b"=" + CRLF + qp_encode(_lf(value)) + b"=" + CRLF


def _phrase(name: str) -> str | None:
    """A display name as an RFC 5322 phrase, or None where the email package must fold it.

    Like the email package: ASCII words stay atoms, runs of other words become one RFC 2047
    encoded word each (a run too long for one encoded word is left to the email package).
    """
    if name.isascii() and name.isprintable() and "=?" not in name:
        if any(ch in _PHRASE_SPECIALS for ch in name):
            return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return name
    out: list[str] = []
    run: list[str] = []
    for word in [*name.split(" "), None]:
        plain = word is not None and word.isascii() and word.isprintable() and "=?" not in word
        if word is not None and not plain:
            run.append(word)
            continue
        if run:
            raw = " ".join(run).encode("utf-8")
            if len(raw) > 45 or not " ".join(run).isprintable():
                return None
            out.append("=?utf-8?b?" + base64.b64encode(raw).decode("ascii") + "?=")
            run = []
        if word is not None:
            if any(ch in _PHRASE_SPECIALS for ch in word):
                return None
            out.append(word)
    return " ".join(out)


def _fold(name: str, value: str) -> bytes:
    """One ASCII header, folded at spaces to 78 columns; refuse what cannot be made valid."""
    line = f"{name}: {value}"
    if len(line) > FOLD_AT:
        lines, current = [], f"{name}:"
        for word in value.split(" "):
            if len(current) + 1 + len(word) > FOLD_AT and current.strip() != f"{name}:":
                lines.append(current)
                current = ""
            current += " " + word
        lines.append(current)
        line = "\r\n".join(lines)
        if any(len(part) > HARD_LIMIT for part in lines):
            raise SendError(f"{name}: header value is too long to send")
    return line.encode("ascii") + CRLF


class MimeTemplate:
    """The dispatch's message as prebuilt bytes with per-subscriber slots.

    Built once per dispatch from the compiled bodies split at their slots (`parts[0] slot[0]
    parts[1] ...`). Bodies are quoted-printable, so the boundary (which holds "=") can never
    occur in them, and each slot sits on its own soft-broken lines, so its length never pushes
    a line past 76 characters.
    """

    def __init__(
        self,
        *,
        html_parts: Sequence[str],
        html_slots: Sequence[str],
        text_parts: Sequence[str],
        text_slots: Sequence[str],
    ) -> None:
        self.boundary = "===============" + secrets.token_hex(10) + "=="
        self._html_source = (tuple(html_parts), tuple(html_slots))
        self._text_source = (tuple(text_parts), tuple(text_slots))
        self._headers: dict[tuple[str, str], bytes] = {}
        self._chunks: list[bytes] = []
        #: after each chunk: (slot name, is html, what precedes the end when the body ends here)
        self._slots: list[tuple[str, bool, tuple[tuple[str, str], ...] | None]] = []
        start = (
            f"MIME-Version: 1.0\r\nContent-Type: multipart/alternative;"
            f' boundary="{self.boundary}"\r\n\r\n--{self.boundary}\r\n'
            'Content-Type: text/plain; charset="utf-8"\r\n'
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        ).encode("ascii")
        middle = (
            f"\r\n--{self.boundary}\r\n"
            'Content-Type: text/html; charset="utf-8"\r\n'
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        ).encode("ascii")
        end = f"\r\n--{self.boundary}--\r\n".encode("ascii")
        pending = start
        for parts, slots, html, after in (
            (*self._text_source, False, middle),
            (*self._html_source, True, end),
        ):
            last = len(parts) - 1
            # The email package ends a body with a newline unless it has one. When the body
            # ends in a slot, that depends on the reader's values: decided in `build`.
            dynamic = last > 0 and not parts[last]
            for i, part in enumerate(parts):
                pending += qp_encode(_normalise(part) if i == last and not dynamic else _lf(part))
                if i == last:
                    pending += after
                else:
                    self._chunks.append(pending)
                    tail = tuple(zip(slots, parts, strict=False))[::-1] if i == last - 1 else None
                    self._slots.append((slots[i], html, tail if dynamic else None))
                    pending = b""
        self._chunks.append(pending)

    def body_source(self, html: bool) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The compiled body split at its slots, as composed (not yet encoded)."""
        return self._html_source if html else self._text_source

    def header(self, name: str, value: str) -> bytes:
        """One header line (folded), cached: most headers are the same in every message."""
        key = (name, value)
        cached = self._headers.get(key)
        if cached is not None:
            return cached
        check_header_value(name, value)
        if value.isascii():
            line = _fold(name, value)
        else:
            header = POLICY.header_factory(name, value)
            line = POLICY.fold_binary(name, header)
        if name not in _PER_READER:
            self._headers[key] = line
        return line

    def build(
        self, message: Message, values: Mapping[str, str], html_values: Mapping[str, str]
    ) -> bytes:
        """Headers from the message's own fields, bodies from the chunks and encoded values."""
        check_header_value("name", message.to_name)
        _check_address("To", message.to_addr)
        if message.to_name:
            to = self._to_line(message.to_name, message.to_addr)
        else:
            to = self.header("To", message.to_addr)
        out = [
            self._from(message.from_addr),
            to,
            self.header("Subject", message.subject),
            _date_line(),
            self.header("Message-ID", message.message_id),
        ]
        for name, value in message.headers.items():
            out.append(self.header(name, value))
        chunks = self._chunks
        out.append(chunks[0])
        for (slot, html, tail), chunk in zip(self._slots, chunks[1:], strict=True):
            these = html_values if html else values
            out.append(_qp_slot(these.get(slot, "")))
            if tail is not None and not _ends_with_newline(tail, these):
                out.append(CRLF)  # a hard line break: the final newline
            out.append(chunk)
        return b"".join(out)

    def _from(self, from_addr: str) -> bytes:
        key = ("From", from_addr)
        cached = self._headers.get(key)
        if cached is None:
            display, address = parseaddr(check_header_value("From", from_addr))
            _check_address("From", address)
            phrase = _phrase(display) if display else ""
            if phrase is None:
                local, _, domain = address.rpartition("@")
                header = POLICY.header_factory("From", Address(display, local, domain))
                cached = POLICY.fold_binary("From", header)
            else:
                cached = _fold("From", f"{phrase} <{address}>" if phrase else address)
            self._headers[key] = cached
        return cached

    def _to_line(self, name: str, addr: str) -> bytes:
        phrase = _phrase(name)
        if phrase is None:  # rare: let the email package encode and fold it
            local, _, domain = addr.rpartition("@")
            header = POLICY.header_factory("To", Address(name, local, domain))
            return POLICY.fold_binary("To", header)
        return _fold("To", f"{phrase} <{addr}>")


def _ends_with_newline(tail: tuple[tuple[str, str], ...], values: Mapping[str, str]) -> bool:
    """Whether a body ending in a slot ends with a newline: the last non-empty piece decides.

    `tail` is (slot, part before it) pairs from the end backwards.
    """
    for slot, part in tail:
        for piece in (values.get(slot, ""), part):
            if piece:
                return _lf(piece).endswith("\n")
    return False


def _check_address(name: str, addr: str) -> None:
    check_header_value(name, addr)
    if not addr.isascii() or addr.count("@") != 1 or any(c in addr for c in ' <>",;'):
        raise SendError(f"{name}: not a deliverable address: {addr!r}")


_date_cache: tuple[int, bytes] = (0, b"")


def _date_line() -> bytes:
    """The Date header, formatted once a second rather than once a message."""
    global _date_cache
    second = int(time.time())
    if _date_cache[0] != second:
        _date_cache = (second, f"Date: {format_datetime(localtime())}\r\n".encode("ascii"))
    return _date_cache[1]


def check_recipient(message: Message) -> None:
    """Refuse, before any hand-off, a recipient no provider would deliver to (SendError): a
    malformed or non-ASCII address, or a name with line breaks. A batch API would otherwise
    refuse the whole request for this one reader."""
    check_header_value("name", message.to_name)
    _check_address("To", message.to_addr)
