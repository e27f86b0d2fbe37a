"""One reader's message: RFC 5322 multipart/alternative with the list headers.

Two ways to the same bytes. `build_mime` uses the email package for the bodies (~5 ms a
message: it quoted-printable-encodes 70 KB of HTML in pure Python). `MimeTemplate` encodes the
dispatch's bodies once, split at the per-subscriber slots, and fills each slot with its value
encoded for its position (HTML-escaped, then quoted-printable), so one message is a join of
prebuilt bytes. On both paths every header line is written by `headers` (never by the email
package's folder: see there why) and the serialised header block is checked to hold exactly the
fields we meant before any sender sees it.
"""

from __future__ import annotations

import binascii
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr, localtime, parseaddr
from functools import cached_property, lru_cache
from typing import Protocol

from newsletter.delivery.headers import (
    CRLF,
    check_field,
    check_header_block,
    fields_safe,
    fold,
    mailbox,
    unstructured,
)
from newsletter.errors import SendError

#: refold_source="none": the email package writes our folded lines as they are, and never
#: re-parses (and so decodes) them
POLICY = SMTP.clone(max_line_length=76, refold_source="none")
#: RFC 2045: quoted-printable lines at most 76 characters, the soft break "=" included
QP_LINE = 76
#: headers whose value differs in every message: never cached
_PER_READER = frozenset({"To", "Message-ID", "List-Unsubscribe"})
#: fields holding an address (a display name and an addr-spec), not free text
ADDRESS_FIELDS = frozenset({"From", "To", "Reply-To", "Sender", "Cc"})
#: fields of free text (a List-Id is a phrase and an id: its ASCII words stay as they are)
TEXT_FIELDS = frozenset({"Subject", "List-Id", "Comments", "Keywords"})
#: the fields every message has besides its own `headers`
_BASE_FIELDS = ("From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type")


#: the sets of header field names found well-formed (a message's own `headers`)
_FIELD_NAMES: set[tuple[str, ...]] = set()


@dataclass(frozen=True)
class Message:
    """What a sender needs: envelope, headers and both bodies (API senders use the parts).

    Every field that reaches a header is checked when the message is made (`check_field`), so
    no sender, MIME or JSON, is ever handed a line break or an encoded word in one.

    A composed message (`from_template`) fills its `html` and `text` only when something reads
    them: the MIME and JSON paths write the bodies from the dispatch's prebuilt pieces, and two
    ~40 KB strings a reader, made and dropped, were the largest cost of composing one.
    """

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

    @classmethod
    def from_template(
        cls,
        prebuilt: Prebuilt,
        *,
        from_addr: str,
        to_addr: str,
        to_name: str,
        subject: str,
        message_id: str,
        headers: dict[str, str],
        tag: str,
    ) -> Message:
        """A message whose bodies are the prebuilt ones, filled on first read."""
        self = object.__new__(cls)
        self.__dict__.update(  # what a frozen dataclass's __init__ does, field by field
            from_addr=from_addr,
            to_addr=to_addr,
            to_name=to_name,
            subject=subject,
            message_id=message_id,
            headers=headers,
            tag=tag,
            prebuilt=prebuilt,
        )
        self.__post_init__()
        return self

    def __getattr__(self, name: str) -> str:
        # only reached for `html` / `text` of a message made by `from_template`, until read
        prebuilt = self.__dict__.get("prebuilt")
        if prebuilt is None or name not in ("html", "text"):
            raise AttributeError(name)
        value: str = getattr(prebuilt, name)
        object.__setattr__(self, name, value)
        return value

    @property
    def template_bodies(self) -> Prebuilt | None:
        """The prebuilt bodies when this message's bodies are still theirs (a copy made with
        other bodies, `dataclasses.replace`, has none): then they can be written from pieces."""
        fast = self.prebuilt
        if fast is None:
            return None
        own = self.__dict__
        for name in ("html", "text"):
            # identity, not equality: compared only once both were filled
            if name in own and own[name] is not fast.__dict__.get(name):
                return None
        return fast

    def __post_init__(self) -> None:
        headers = self.headers
        # one search over all of them (a space cannot join two fields into an encoded word);
        # field by field only to name the culprit
        own = (self.from_addr, self.to_addr, self.to_name, self.subject, self.message_id)
        if not fields_safe(" ".join((*own, *headers.values()))):
            labels = ("From", "To", "name", "Subject", "Message-ID")
            for label, value in (*zip(labels, own, strict=True), *headers.items()):
                check_field(label, value)
        names = tuple(headers)
        if names not in _FIELD_NAMES:  # every message of a dispatch has the same ones
            for name in names:
                if not name.isascii() or not name.replace("-", "").isalnum():
                    raise SendError(f"{name!r}: not a header field name")
            if len(_FIELD_NAMES) < 256:
                _FIELD_NAMES.add(names)

    @property
    def to_header(self) -> str:
        return formataddr((self.to_name, self.to_addr)) if self.to_name else self.to_addr

    @property
    def fields(self) -> tuple[str, ...]:
        """The header fields its serialised form holds, each once."""
        return (*_BASE_FIELDS, *self.headers)

    def as_bytes(self) -> bytes:
        """The whole message, CRLF line ends, ready for SMTP or a file."""
        fast = self.template_bodies  # a copy with other bodies goes the slow way
        if fast is not None:
            # every line of its header block was verified as one field when it was made
            return fast.template.build(self, fast.values, fast.html_values)
        raw = build_mime(self).as_bytes(policy=POLICY)
        check_header_block(raw, self.fields)  # the email package serialised these bytes
        return raw


class Fillable(Protocol):
    def fill(self, values: dict[str, str]) -> str: ...


@dataclass(frozen=True)
class Prebuilt:
    """The per-dispatch byte template and this reader's slot values; the filled bodies are made
    on first read (and kept: a message and its copies share them)."""

    template: MimeTemplate
    values: dict[str, str]
    html_values: dict[str, str]  # the same values, HTML-escaped
    html_source: Fillable = field(repr=False)
    text_source: Fillable = field(repr=False)

    @classmethod
    def of(
        cls,
        template: MimeTemplate,
        values: dict[str, str],
        html_values: dict[str, str],
        html_source: Fillable,
        text_source: Fillable,
    ) -> Prebuilt:
        """What `__init__` makes, without its five `object.__setattr__` calls (once a reader)."""
        self = object.__new__(cls)
        self.__dict__.update(
            template=template,
            values=values,
            html_values=html_values,
            html_source=html_source,
            text_source=text_source,
        )
        return self

    @cached_property
    def html(self) -> str:
        return self.html_source.fill(self.html_values)

    @cached_property
    def text(self) -> str:
        return self.text_source.fill(self.values)


def header_line(name: str, value: str) -> bytes:
    """One header field, encoded and folded by us, verified: address fields as a mailbox, free
    text with encoded words where it is not ASCII, anything else (URLs, ids) as it is."""
    check_field(name, value)
    if name in ADDRESS_FIELDS:
        display, addr = parseaddr(value)
        return fold(name, mailbox(name, display, addr or value))
    if name in TEXT_FIELDS:
        return fold(name, unstructured(value))
    return fold(name, value)


def to_line(message: Message) -> bytes:
    return fold("To", mailbox("To", message.to_name, message.to_addr))


def new_message_id(domain: str) -> str:
    return f"<{int(time.time())}.{secrets.token_hex(12)}@{domain}>"


def build_mime(message: Message) -> EmailMessage:
    """The reference build with the email package (the slow path, and what tests compare to).

    The email package builds the bodies; the header lines are ours (`set_raw`, written as
    they are under POLICY), so it never parses, decodes or refolds a value.
    """
    mime = EmailMessage(policy=POLICY)
    lines = [
        header_line("From", message.from_addr),
        to_line(message),
        header_line("Subject", message.subject),
        _date_line(),
        header_line("Message-ID", message.message_id),
        *(header_line(name, value) for name, value in message.headers.items()),
    ]
    for line in lines:
        name, _, value = line.decode("ascii").partition(": ")
        mime.set_raw(name, value.removesuffix("\r\n"))
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
            f"MIME-Version: 1.0\r\nContent-Type: multipart/alternative;\r\n"
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
        line = header_line(name, value)
        if name not in _PER_READER:
            self._headers[key] = line
        return line

    def build(
        self, message: Message, values: Mapping[str, str], html_values: Mapping[str, str]
    ) -> bytes:
        """Headers from the message's own fields, bodies from the chunks and encoded values."""
        out = [
            self.header("From", message.from_addr),
            to_line(message),
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


def _ends_with_newline(tail: tuple[tuple[str, str], ...], values: Mapping[str, str]) -> bool:
    """Whether a body ending in a slot ends with a newline: the last non-empty piece decides.

    `tail` is (slot, part before it) pairs from the end backwards.
    """
    for slot, part in tail:
        for piece in (values.get(slot, ""), part):
            if piece:
                return _lf(piece).endswith("\n")
    return False


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
    mailbox("To", message.to_name, message.to_addr)
