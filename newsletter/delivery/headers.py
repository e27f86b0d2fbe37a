"""Header lines we write ourselves, and the checks that keep a stranger's text inside its field.

Python 3.11.7's email package (CPython issue CVE-2024-6923, fixed in 3.11.10) decodes RFC 2047
encoded words (`=?utf-8?b?...?=`) when it folds a header and writes what they decode to, CR/LF
included; and it splits a value at every line boundary `str.splitlines` knows (\\x0b, \\x1c,
\\x85, \\u2028...). So no value of ours goes through its header folder. Every message field is
checked when a `Message` is made (no control character, no line boundary, no encoded word:
`check_field`), every line is encoded and folded here, and every line is verified after it is
serialised (`verified`), on every path, before any sender sees it.
"""

from __future__ import annotations

import base64
import re
import unicodedata
from collections.abc import Callable, Iterable
from functools import lru_cache

from newsletter.errors import SendError

CRLF = b"\r\n"
#: RFC 5322: header lines SHOULD stay within 78 characters and MUST within 998
FOLD_AT = 78
HARD_LIMIT = 998
#: an encoded word is at most 75 characters (RFC 2047 2): "=?utf-8?b?" + 60 base64 + "?="
_EW_BYTES = 45
#: a word longer than this is encoded (and so split) rather than written as one long line
_LONG_WORD = 60
#: RFC 5322 atext: a display name of these (and spaces) needs no quotes
_ATEXT = re.compile(r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+")
#: what may not appear in any header field: C0/C1 controls, DEL, every line boundary of
#: `str.splitlines`, and the opening of an encoded word
_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]|=\\?")
#: a display name we put in To: or a greeting: letters (any script) in words joined by
#: space, dot, comma, apostrophe or hyphen; no digits, no "@", no links
MAX_DISPLAY_NAME = 64
_NAME_JOINERS = frozenset(" .,'’-")
_ASCII_JOINERS = str.maketrans("", "", "".join(ch for ch in _NAME_JOINERS if ch.isascii()))
_DOMAIN_LIKE = re.compile(r"\w\.\w{2,}")
#: a continuation line with nothing on it (unfolding would join the next field to this one)
_EMPTY_LINE = re.compile(rb"\r\n[ \t]*(?:\r\n|$)")
#: what no addr-spec we write may hold (quoted local parts and comments included)
_NOT_IN_ADDRESS = re.compile(r'[\s<>",;()\[\]\\]')


def check_field(field: str, value: str) -> str:
    """`value` unchanged, or SendError naming the field: nothing in it can end a header line or
    be decoded into something else."""
    if fields_safe(value):
        return value
    found = _FORBIDDEN.search(value)
    if found is not None:
        what = "an encoded word (=?)" if found.group() == "=?" else f"{found.group()!r}"
        raise SendError(f"{field}: {what} is not allowed in a header value")
    return value


def fields_safe(value: str) -> bool:
    """Whether `check_field` would pass `value` (no exception: the common case, fast)."""
    if "=?" in value:
        return False
    # printable text holds no control character at all; the rest is looked at closely
    return value.isprintable() or _FORBIDDEN.search(value) is None


@lru_cache(maxsize=256)  # a dispatch's subject, the same for every reader
def header_text(value: str) -> str:
    """Free text (a subject, a publication name) made safe for a header: control characters
    and line breaks become spaces, runs of spaces one, and an encoded word's "=?" opening is
    broken with a zero-width space so that no decoder, ours or a provider's, decodes it."""
    text = "".join(" " if unicodedata.category(ch) in ("Cc", "Zl", "Zp") else ch for ch in value)
    return " ".join(text.split()).replace("=?", "=\u200b?")


def display_name(name: str | None) -> str:
    """The name to put in `To:` or a greeting: a short plain name, or "" (address only).

    Names come from a form anyone can post, so anything that is not plainly a name (digits,
    symbols, a link, over 64 characters) stays out of mail.
    """
    text = " ".join((name or "").split())
    if text.isascii():  # NFC changes nothing, and a letter is what isalpha says: no lookups
        plain = text[:1].isalpha() and text.translate(_ASCII_JOINERS).isalpha()
    else:
        text = unicodedata.normalize("NFC", text)
        plain = unicodedata.category(text[0])[0] == "L" and all(
            ch in _NAME_JOINERS or unicodedata.category(ch)[0] in "LM" for ch in text
        )
    if not plain or len(text) > MAX_DISPLAY_NAME or _DOMAIN_LIKE.search(text) or ".." in text:
        return ""
    return text


def _plain(word: str) -> bool:
    return word.isascii() and word.isprintable() and len(word) <= _LONG_WORD


def encoded_words(text: str) -> list[str]:
    """`text` as RFC 2047 base64 encoded words of whole characters, each within 75 columns.

    Decoders drop the space between adjacent encoded words, so spaces travel inside them; a
    word is cut after a space where one is near, so a decoder that keeps the space between
    encoded words (the email package's address parser does) only doubles it.
    """
    words: list[str] = []
    chunk: list[str] = []
    size = 0
    for ch in text:
        width = len(ch.encode("utf-8"))
        if size + width > _EW_BYTES and chunk:
            cut = "".join(chunk).rfind(" ") + 1
            if cut < len(chunk) // 2:  # no space in the second half: cut here
                cut = len(chunk)
            words.append("".join(chunk[:cut]))
            chunk = chunk[cut:]
            size = sum(len(c.encode("utf-8")) for c in chunk)
        chunk.append(ch)
        size += width
    if chunk:
        words.append("".join(chunk))
    return [f"=?utf-8?b?{base64.b64encode(w.encode('utf-8')).decode('ascii')}?=" for w in words]


def _words(value: str, keep: Callable[[str], bool]) -> str:
    """Words `keep` accepts as they are; every run of the others as encoded words."""
    out: list[str] = []
    run: list[str] = []
    for word in value.split(" "):
        if keep(word):
            if run:
                out.extend(encoded_words(" ".join(run)))
                run = []
            out.append(word)
        else:
            run.append(word)
    if run:
        out.extend(encoded_words(" ".join(run)))
    return " ".join(out)


def unstructured(value: str) -> str:
    """An unstructured value (Subject, List-Id): ASCII words as they are, every run of other
    words (non-ASCII, or too long for a line) as encoded words."""
    return _words(value, _plain)


def phrase(name: str) -> str:
    """A display name as an RFC 5322 phrase: atoms, one quoted string, or atoms and encoded
    words (like the email package: ASCII words stay readable)."""
    words = name.split(" ")
    if all(_plain(word) for word in words):
        if all(_ATEXT.fullmatch(word) for word in words if word):
            return name
        return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return _words(name, lambda word: _plain(word) and bool(_ATEXT.fullmatch(word)))


def address(field: str, addr: str) -> str:
    """An addr-spec for a header: ASCII local part, IDN domain as A-labels (punycode)."""
    check_field(field, addr)
    local, at, domain = addr.rpartition("@")
    if not at or not local or not domain or _NOT_IN_ADDRESS.search(addr):
        raise SendError(f"{field}: not a deliverable address: {addr!r}")
    if not local.isascii():
        raise SendError(f"{field}: {addr!r}: a non-ASCII local part needs SMTPUTF8 (unsupported)")
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            raise SendError(f"{field}: {addr!r}: the domain is not a valid IDN") from None
    return f"{local}@{domain}"


def mailbox(field: str, name: str, addr: str) -> str:
    """`Name <addr>`, or the bare address when there is no name."""
    spec = address(field, addr)
    check_field(field, name)
    return f"{phrase(name)} <{spec}>" if name else spec


def fold(name: str, value: str) -> bytes:
    """One header line, folded at spaces to 78 columns, verified."""
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
    try:
        encoded = line.encode("ascii") + CRLF
    except UnicodeEncodeError:
        raise SendError(f"{name}: a header value must be ASCII once encoded") from None
    return verified(name, encoded)


def verified(name: str, line: bytes) -> bytes:
    """`line` unchanged if it is exactly one header field `name`; SendError otherwise.

    The last word on injection: whatever encoded or folded it, the bytes hold one field, its
    continuation lines start with a space and hold something, and no CR or LF stands alone.
    """
    if not line.startswith(name.encode("ascii") + b":") or not line.endswith(CRLF):
        raise SendError(f"{name}: the serialised header is not one field")
    inner = line[:-2]
    unfolded = inner.replace(b"\r\n ", b"")
    if b"\r" in unfolded or b"\n" in unfolded or _EMPTY_LINE.search(inner):
        raise SendError(f"{name}: the serialised header has a stray line break or an empty line")
    if len(inner) > HARD_LIMIT and max(map(len, inner.split(CRLF))) > HARD_LIMIT:
        raise SendError(f"{name}: the serialised header has a line over {HARD_LIMIT} characters")
    return line


#: a field's name at the start of a line (RFC 5322: printable ASCII but the colon)
_FIELD_NAME = re.compile(rb"(?:^|\r\n)([!-9;-~]+):")
#: a line break followed by neither a field nor a continuation line with something on it
_LOOSE_LINE = re.compile(rb"\r\n(?![ \t]+[^ \t\r\n]|[!-9;-~]+:)")


def check_header_block(raw: bytes, expected: Iterable[str]) -> None:
    """The header block of serialised message `raw` holds exactly the fields `expected`, each
    once (names compared case-insensitively); SendError naming what differs."""
    end = raw.find(CRLF + CRLF)
    if end < 0:
        raise SendError("message: no end to the header block")
    head = raw[:end]  # (partition would copy the whole body too)
    if head.count(b"\r") != head.count(b"\n") or head.count(b"\n") != head.count(CRLF):
        raise SendError("message: a stray line break in the header block")
    if _LOOSE_LINE.search(head) or not _FIELD_NAME.match(head):
        raise SendError("message: a header line that is neither a field nor a continuation")
    names = sorted(name.decode("ascii").lower() for name in _FIELD_NAME.findall(head))
    want = sorted(name.lower() for name in expected)
    if names != want:
        extra = sorted(set(names) - set(want)) or sorted(n for n in names if names.count(n) > 1)
        missing = sorted(set(want) - set(names))
        raise SendError(f"message: header fields not as built: extra {extra}, missing {missing}")
