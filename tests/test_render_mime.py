"""The fast per-reader bytes against the email package: same headers, same decoded parts."""

from __future__ import annotations

import dataclasses
import email
import re
from email import policy

import pytest
from hypothesis import given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from newsletter.delivery.compose import Composer
from newsletter.delivery.headers import display_name
from newsletter.delivery.message import POLICY, Message, MimeTemplate, build_mime, qp_encode
from newsletter.dispatch.render import Rendered, Template
from newsletter.errors import SendError
from newsletter.models import Subscriber
from newsletter.settings import Settings

NONCE = "n0nce"


def _rendered(html: str, text: str) -> Rendered:
    return Rendered(
        html=Template.split(html, NONCE),
        text=Template.split(text, NONCE),
        subject="Chipmaker guides capex up 40% — and 6 more",
        preheader="",
        compiled_html=html,
        compiled_text=text,
        nonce=NONCE,
    )


def _slot(name: str) -> str:
    return f"@@{NONCE}-{name}@@"


# One very long line, as MRML emits, with the slots inside it and near line ends.
HTML = (
    "<!doctype html><html><body><p>"
    + "x" * 73
    + _slot("greeting")
    + '</p><div style="color:#123">'
    + "Café ’quotes’ = signs = everywhere " * 300
    + '</div><a href="'
    + _slot("unsubscribe_url")
    + '">'
    + _slot("unsubscribe_label")
    + "</a> "
    + _slot("reason")
    + "   </body></html>"
)
TEXT = (
    "THE BRIEF · WEEKLY DISPATCH\n\n"
    + _slot("greeting")
    + "\n\nA line with trailing spaces   \n"
    + "- ".join(["Why now: ünïcode text"] * 30)
    + "\n\nUnsubscribe:\n  "
    + _slot("unsubscribe_url")
    + "\n"
    + _slot("reason_text")
)


@pytest.fixture
def composer(settings: Settings) -> Composer:
    return Composer(_rendered(HTML, TEXT), settings, "secret-key", "2026-W24")


def _parse(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=policy.default)  # type: ignore[return-value]


def _body(raw: bytes, kind: str) -> str:
    """A decoded part with its canonical CRLF line ends read as LF."""
    return _parse(raw).get_body((kind,)).get_content().replace("\r\n", "\n")


def _compare(fast: bytes, slow: bytes) -> None:
    a, b = _parse(fast), _parse(slow)
    for name in ("From", "To", "Subject", "Message-ID", "List-Unsubscribe",
                 "List-Unsubscribe-Post", "List-Id", "MIME-Version"):  # fmt: skip
        if name == "To" and "=?" in str(a[name]):
            continue  # the email package decodes a name that merely looks encoded; we keep it
        assert str(a[name]).strip() == str(b[name]).strip(), name
    assert a.get_content_type() == b.get_content_type() == "multipart/alternative"
    parts_a, parts_b = list(a.iter_parts()), list(b.iter_parts())
    assert [p.get_content_type() for p in parts_a] == ["text/plain", "text/html"]
    for pa, pb in zip(parts_a, parts_b, strict=True):
        assert pa.get_content_type() == pb.get_content_type()
        assert pa.get_content_charset() == "utf-8"
        assert pa["Content-Transfer-Encoding"] == "quoted-printable"
        assert pa.get_content() == pb.get_content()


def _check_lines(raw: bytes) -> None:
    assert b"\n" not in raw.replace(b"\r\n", b"")  # CRLF only, no bare LF
    assert b"\r" not in raw.replace(b"\r\n", b"")  # no bare CR
    _, _, body = raw.partition(b"\r\n\r\n")
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    # quoted-printable lines stay within RFC 2045's 76 characters
    assert all(len(line) <= 76 for line in body.split(b"\r\n")), max(body.split(b"\r\n"), key=len)
    assert raw.isascii()


NAMES = [
    "Ada Lovelace",
    "",
    'Lovelace, Ada "the Countess"',
    "Zoë Ünïcode",
    "José María Fernández-Ñúñez de la Peña y Muñoz-Ärger, Jr.",
    "名前 テスト",
    "=?utf-8?q?sneaky?=",
    "Eve (admin)",
    "A" * 120,
]


@pytest.mark.parametrize("name", NAMES)
def test_fast_bytes_decode_to_what_the_email_package_builds(composer: Composer, name: str) -> None:
    message = composer.compose(Subscriber(7, "reader@example.org", name, "active"))
    fast = message.as_bytes()
    slow = build_mime(message).as_bytes(policy=POLICY)
    _compare(fast, slow)
    _check_lines(fast)
    parsed = _parse(fast)
    # only a short plain name reaches To: and the greeting
    assert parsed["To"].addresses[0].display_name == display_name(name)
    greeting = f"Hello {display_name(name)}," if display_name(name) else "Hello,"
    assert greeting in _body(fast, "plain")
    text = _body(fast, "plain")
    assert composer.unsubscribe_url(Subscriber(7, "x", None, "active")) in text


@pytest.mark.parametrize("name", [n for n in NAMES if "=?" not in n] + ["B" * 2000])
def test_any_display_name_round_trips_on_both_paths(composer: Composer, name: str) -> None:
    """Whatever a caller puts in to_name (here by hand, past compose's filter), both builds
    write it as one valid To: line that decodes to that name. (A run too long for one encoded
    word is split; the email package's address parser then adds a space at the cut.)"""
    composed = composer.compose(Subscriber(7, "reader@example.org", "Ada", "active"))
    message = dataclasses.replace(composed, to_name=name)
    one_off = message.as_bytes()  # bodies are the same objects: still the prebuilt template
    slow = build_mime(message).as_bytes(policy=POLICY)
    for raw in (one_off, slow):
        _check_lines(raw)
        to = _parse(raw)["To"]
        assert len(to.addresses) == 1
        decoded = to.addresses[0].display_name
        long_run = any(len(word.encode()) > 45 for word in name.split(" "))
        assert decoded == name or (long_run and decoded.replace(" ", "") == name.replace(" ", ""))
        assert to.addresses[0].addr_spec == "reader@example.org"


def test_the_prebuilt_template_is_used(composer: Composer) -> None:
    message = composer.compose(Subscriber(7, "reader@example.org", "Ada", "active"))
    # the fast bytes come from the prebuilt template: its boundary is in them
    assert composer.template.boundary.encode() in message.as_bytes()
    assert message.prebuilt is not None


def test_a_copy_with_other_bodies_is_built_from_those_bodies(composer: Composer) -> None:
    message = composer.compose(Subscriber(7, "reader@example.org", "Ada", "active"))
    changed = dataclasses.replace(message, text="other text\n")
    assert _body(changed.as_bytes(), "plain") == "other text\n"
    assert composer.template.boundary.encode() not in changed.as_bytes()


def test_per_reader_values_are_escaped_for_html_and_encoded_for_qp(composer: Composer) -> None:
    reader = Subscriber(7, "o'neil&co@example.org", "Zoë Ö", "active")
    message = composer.compose(reader)
    html = _body(message.as_bytes(), "html")
    text = _body(message.as_bytes(), "plain")
    assert "o&#39;neil&amp;co@example.org" in html and "o'neil&co@example.org" not in html
    assert "Hello Zoë Ö," in text and "o'neil&co@example.org" in text
    assert html == message.html + "\n"  # the email package's final newline, on both paths


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", "Eve\r\nBcc: victim@example.org"),
        ("to_addr", "eve@example.org\r\nBcc: victim@example.org"),
        ("subject", "Hi\nBcc: victim@example.org"),
        ("header", "x\r\nBcc: victim@example.org"),
    ],
)
def test_no_header_injection(composer: Composer, field: str, value: str) -> None:
    message = composer.compose(Subscriber(7, "reader@example.org", "Ada", "active"))
    changes = {
        "name": {"to_name": value},
        "to_addr": {"to_addr": value},
        "subject": {"subject": value},
        "header": {"headers": {**message.headers, "List-Id": value}},
    }[field]
    with pytest.raises(SendError, match="is not allowed in a header value"):
        dataclasses.replace(message, **changes)


def test_compose_keeps_a_hostile_name_out_of_the_message(composer: Composer) -> None:
    message = composer.compose(
        Subscriber(7, "a@example.org", "Eve\r\nBcc: x@example.org", "active")
    )
    head = message.as_bytes().partition(b"\r\n\r\n")[0]
    assert not re.search(rb"^Bcc:", head, re.MULTILINE)
    assert _parse(message.as_bytes())["To"].addresses[0].display_name == ""
    assert "Hello," in _body(message.as_bytes(), "plain")


@hyp_settings(max_examples=300, deadline=None)
@given(
    parts=st.lists(st.text(max_size=120), min_size=1, max_size=4),
    values=st.lists(st.text(max_size=90), min_size=3, max_size=3),
)
def test_slots_anywhere_round_trip(parts: list[str], values: list[str]) -> None:
    """Any text, any values, slots anywhere (even last): decodes to what the email package
    would send, within the line limits."""
    slots = ("a", "b", "c")[: len(parts) - 1]
    given_values = dict(zip(("a", "b", "c"), values, strict=True))
    template = MimeTemplate(
        html_parts=tuple(parts), html_slots=slots, text_parts=tuple(parts), text_slots=slots
    )
    full = parts[0] + "".join(given_values[s] + p for s, p in zip(slots, parts[1:], strict=True))
    raw = template.build(_bare_message(full), given_values, given_values)
    _check_lines(raw)
    expected = full.replace("\r\n", "\n").replace("\r", "\n")
    expected = expected if expected.endswith("\n") else expected + "\n"
    assert _body(raw, "plain") == expected
    assert _body(raw, "html") == expected


def _bare_message(text: str) -> Message:
    return Message(
        from_addr="The Brief <brief@example.org>",
        to_addr="a@example.org",
        to_name="",
        subject="s",
        html="<p>",
        text=text,
        message_id="<1@example.org>",
    )


def test_qp_lines_leave_room_for_a_soft_break() -> None:
    for n in range(60, 90):
        for filler in ("a", "é", "="):
            encoded = qp_encode(filler * n)
            assert all(len(line) <= 75 for line in encoded.split(b"\r\n")[-1:])
            assert all(len(line) <= 76 for line in encoded.split(b"\r\n"))


@pytest.mark.parametrize(
    ("from_addr", "display"),
    [
        ("Le Brief Économique <brief@example.org>", "Le Brief Économique"),
        ('"The Brief, Inc." <brief@example.org>', "The Brief, Inc."),
        ("brief@example.org", ""),
    ],
)
def test_from_and_list_id_with_any_publication_name(
    settings: Settings, from_addr: str, display: str
) -> None:
    named = settings.replace(from_addr=from_addr, name=display or "Brief")
    composer = Composer(_rendered(HTML, TEXT), named, "secret-key", "2026-W24")
    message = composer.compose(Subscriber(7, "reader@example.org", "Zoë", "active"))
    fast = message.as_bytes()
    _compare(fast, build_mime(message).as_bytes(policy=POLICY))
    _check_lines(fast)
    parsed = _parse(fast)
    assert parsed["From"].addresses[0].display_name == display
    assert parsed["From"].addresses[0].addr_spec == "brief@example.org"
