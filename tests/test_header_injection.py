"""Header injection through names, addresses and subjects, for every message we build.

Python 3.11.7's email package decodes RFC 2047 encoded words while folding and writes their
CR/LF (CVE-2024-6923), so the corpus is encoded words in every form that reaches a decoder,
plus every line boundary `str.splitlines` knows. Each message is serialised and parsed back
with the stdlib parser, and must hold exactly the fields we built: one To, no Bcc, the real
Subject, one HTML body.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest

from newsletter.delivery.compose import Composer
from newsletter.delivery.headers import check_field, display_name, header_text
from newsletter.delivery.message import POLICY, Message, build_mime
from newsletter.delivery.senders import (
    FileSender,
    MailgunSender,
    PostmarkSender,
    ResendSender,
    SendGridSender,
)
from newsletter.delivery.senders.http import make_client
from newsletter.demo import load_sample
from newsletter.dispatch.build import approve, build_dispatch
from newsletter.dispatch.render import Rendered, Template
from newsletter.errors import SendError, SubscriberError
from newsletter.models import Subscriber
from newsletter.preview import send_test
from newsletter.readers.notices import compose_notice
from newsletter.readers.subscriptions import InvalidName, Notice, clean_name, normalise_email
from newsletter.settings import Settings
from newsletter.store import Store
from newsletter.weeks import Week


def _b(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


INJECT = "Bob\r\nBcc: attacker@evil.example"
NEW_BODY = "Bob\r\nSubject: You won\r\nContent-Type: text/html\r\n\r\n<h1>Click here</h1>"
#: what a stranger may type where a name goes; each would add a Bcc (or a Subject and an HTML
#: body) if decoded or split into the header
CORPUS = {
    "b-word": f"=?utf-8?b?{_b(INJECT)}?=",
    "q-word": "=?utf-8?q?Bob=0D=0ABcc:_attacker@evil.example?=",
    "upper-case": f"=?UTF-8?B?{_b(INJECT)}?=",
    "latin-1": "=?iso-8859-1?q?Bob=0D=0ABcc:_attacker@evil.example?=",
    "rfc2231-lang": f"=?utf-8*en?b?{_b(INJECT)}?=",
    "folded": f"=?utf-8?b?{_b('Bob')}?=\r\n =?utf-8?b?{_b(INJECT.removeprefix('Bob'))}?=",
    "nested": f"=?utf-8?b?{_b('=?utf-8?b?' + _b(INJECT) + '?=')}?=",
    "new-body": f"=?utf-8?b?{_b(NEW_BODY)}?=",
    "long-with-unicode": f"=?utf-8?b?{_b(INJECT)}?= " + "Ünïcode " * 30,
    "split-by-nul": f"=\x00?utf-8?b?{_b(INJECT)}?=",
    "split-by-format-char": f"=\u200d?utf-8?b?{_b(INJECT)}?=",
    "fullwidth": "＝？utf-8？b？" + _b(INJECT) + "？＝",
    "raw-crlf": INJECT,
    "raw-lf-body": "Bob\n\n<h1>Click here</h1>",
    "line-separator": "Bob\u2028Bcc: attacker@evil.example",
    "paragraph-separator": "Bob\u2029Bcc: attacker@evil.example",
    "next-line": "Bob\x85Bcc: attacker@evil.example",
    "vertical-tab": "Bob\x0bBcc: attacker@evil.example",
    "form-feed": "Bob\x0cBcc: attacker@evil.example",
    "file-separator": "Bob\x1cBcc: attacker@evil.example",
    "link": "Your account is locked: visit www.evil.example",
    "huge": "N" * 5000,
}
HOSTILE_ADDRESSES = [
    f"=?utf-8?b?{_b(INJECT)}?=@evil.example",
    "=?utf-8?q?a=0D=0ABcc:_x@evil.example?=@evil.example",
    "victim@example.org\r\nBcc: attacker@evil.example",
    "victim@example.org\u2028Bcc: attacker@evil.example",
]
FIELDS = ["From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type"]


def parse(raw: bytes) -> EmailMessage:
    parsed = message_from_bytes(raw, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def assert_exactly(raw: bytes, *, to: str, subject: str, fields: Iterable[str]) -> EmailMessage:
    """The parsed message holds the fields we built, once each, and nothing else."""
    mail = parse(raw)
    assert sorted(k.lower() for k in mail) == sorted(f.lower() for f in fields)
    assert mail["Bcc"] is None and mail["Cc"] is None
    [recipient] = mail["To"].addresses
    assert recipient.addr_spec == to
    assert str(mail["Subject"]) == subject
    parts = [p.get_content_type() for p in mail.walk()]
    assert parts == ["multipart/alternative", "text/plain", "text/html"]
    assert not mail.defects
    return mail


def text_of(mail: EmailMessage) -> str:
    plain, html = mail.get_body(("plain",)), mail.get_body(("html",))
    assert plain is not None and html is not None
    return plain.get_content() + html.get_content()


# --- where a name is accepted ---------------------------------------------------------------


@pytest.mark.parametrize("name", CORPUS.values(), ids=CORPUS.keys())
def test_a_name_is_refused_or_stored_without_anything_a_header_could_break_on(name: str) -> None:
    try:
        stored = clean_name(name)
    except InvalidName as exc:
        assert "encoded word" in str(exc)
        return
    assert stored is not None
    assert "=?" not in stored and len(stored) <= 200
    assert stored.isprintable()  # no control, format or line-boundary character


@pytest.mark.parametrize("key", ["b-word", "q-word", "nested", "split-by-nul", "fullwidth"])
def test_encoded_words_in_a_name_are_refused_at_acceptance(key: str) -> None:
    with pytest.raises(InvalidName):
        clean_name(CORPUS[key])


@pytest.mark.parametrize("addr", HOSTILE_ADDRESSES)
def test_hostile_addresses_are_refused_at_acceptance(addr: str) -> None:
    with pytest.raises(SubscriberError):
        normalise_email(addr)


# --- where a header is written ------------------------------------------------------------


@pytest.mark.parametrize("value", [*CORPUS.values(), *HOSTILE_ADDRESSES])
def test_no_message_can_be_made_with_a_hostile_header_field(value: str) -> None:
    """Every sender (MIME or JSON) gets a `Message`; a hostile field stops it being made."""
    good = {
        "from_addr": "The Brief <brief@example.org>",
        "to_addr": "reader@example.org",
        "to_name": "",
        "subject": "Issue 1",
        "html": "<p>x</p>",
        "text": "x",
        "message_id": "<1@example.org>",
    }
    unsafe = value != header_text(value) or "=?" in value or not value.isprintable()
    for key in ("to_name", "to_addr", "subject"):
        if unsafe:
            with pytest.raises(SendError, match="not allowed in a header value"):
                Message(**{**good, key: value})
    if unsafe:
        with pytest.raises(SendError):
            Message(**good, headers={"List-Id": value})


NONCE = "n0nce"


def _rendered(subject: str) -> Rendered:
    slot = f"@@{NONCE}-greeting@@"
    unsubscribe = f"@@{NONCE}-unsubscribe_url@@"
    html = f"<html><body><p>{slot}</p><a href='{unsubscribe}'>Unsubscribe</a></body></html>"
    text = f"{slot}\n\nUnsubscribe: {unsubscribe}\n"
    return Rendered(
        html=Template.split(html, NONCE),
        text=Template.split(text, NONCE),
        subject=subject,
        preheader="",
        compiled_html=html,
        compiled_text=text,
        nonce=NONCE,
    )


@pytest.mark.parametrize("hostile", CORPUS.values(), ids=CORPUS.keys())
def test_dispatch_on_both_paths_holds_only_our_headers(settings: Settings, hostile: str) -> None:
    """A name stored before names were filtered (straight into the row) and a feed title that
    became the subject: the dispatch, fast path and email-package path, stays ours."""
    composer = Composer(_rendered(f"Weekly: {hostile}"), settings, "secret", "2026-W24")
    reader = Subscriber(7, "reader@example.org", hostile, "active", "nonce-7")
    message = composer.compose(reader)
    fields = [*FIELDS, *message.headers]
    subject = header_text(f"Weekly: {hostile}")
    for raw in (message.as_bytes(), build_mime(message).as_bytes(policy=POLICY)):
        mail = assert_exactly(raw, to="reader@example.org", subject=subject, fields=fields)
        assert mail["To"].addresses[0].display_name == display_name(hostile) == ""
        assert "attacker@evil.example" not in text_of(mail)
        assert "Hello," in text_of(mail)


@pytest.mark.parametrize("hostile", CORPUS.values(), ids=CORPUS.keys())
@pytest.mark.parametrize("kind", ["confirm", "resubscribe", "already"])
def test_notice_mails_never_carry_the_name(settings: Settings, hostile: str, kind: str) -> None:
    notice = Notice(9, "reader@example.org", hostile, kind, 1_780_000_000.0, "nonce-9")
    message = compose_notice(settings, "secret", notice)
    fields = [*FIELDS, *message.headers]
    mail = assert_exactly(
        message.as_bytes(),
        to="reader@example.org",
        subject=str(message.subject),
        fields=fields,
    )
    assert mail["To"].addresses[0].display_name == ""
    body = text_of(mail)
    assert "Hello," in body
    for piece in ("Bob", "attacker", "evil.example", "NNNN", "Ünïcode", "Click here"):
        assert piece not in body


def test_a_long_plain_name_leaves_the_to_line_valid(settings: Settings) -> None:
    composer = Composer(_rendered("Weekly"), settings, "secret", "2026-W24")
    for name in ("Ada " * 16, "Zoë Ünïcode-Ärger " * 3 + "Jr.", "名前 テスト " * 8):
        message = composer.compose(Subscriber(7, "reader@example.org", name, "active", "n"))
        raw = message.as_bytes()
        head = raw.partition(b"\r\n\r\n")[0]
        to = head[head.index(b"\r\nTo: ") + 2 : head.index(b"\r\nSubject: ")]
        assert all(len(line) <= 78 for line in to.split(b"\r\n"))
        mail = assert_exactly(raw, to="reader@example.org", subject="Weekly", fields=[
            *FIELDS, *message.headers
        ])  # fmt: skip
        assert mail["To"].addresses[0].display_name.split() == display_name(name).split()


# --- a real send and a real test mail -----------------------------------------------------


@pytest.fixture
def week_ready(store: Store, settings: Settings) -> Store:
    load_sample(store, now=datetime(2026, 6, 14, tzinfo=UTC))
    build_dispatch(store, settings, Week(2026, 24))
    approve(store, settings, Week(2026, 24))
    return store


def test_a_real_send_to_rows_holding_hostile_names(
    week_ready: Store, settings: Settings, tmp_path: Path
) -> None:
    """Rows written before names were filtered, sent by `send` through the file sender."""
    from newsletter.delivery.deliver import send_dispatch

    for i, name in enumerate(CORPUS.values()):
        week_ready.subscribers.add(f"r{i}@example.org", name=None, status="active", actor="t")
        week_ready.db.execute(
            "UPDATE subscribers SET name = ? WHERE email = ?", [name, f"r{i}@example.org"]
        )
    report = send_dispatch(week_ready, settings, FileSender(tmp_path / "out"), Week(2026, 24))
    assert report.sent == len(CORPUS) and report.failed == 0
    files = sorted((tmp_path / "out").rglob("*.eml"))
    assert len(files) == len(CORPUS)
    for path in files:
        mail = parse(path.read_bytes())
        assert mail["Bcc"] is None and len(mail.get_all("To") or []) == 1
        assert mail["To"].addresses[0].display_name == ""
        assert [p.get_content_type() for p in mail.walk()].count("text/html") == 1


@pytest.mark.parametrize("addr", HOSTILE_ADDRESSES)
def test_preview_test_mail_refuses_a_hostile_address(
    week_ready: Store, settings: Settings, tmp_path: Path, addr: str
) -> None:
    sender = FileSender(tmp_path / "out")
    with pytest.raises(SendError):
        send_test(week_ready, settings, Week(2026, 24), addr, sender)
    assert not (tmp_path / "out").exists()


def test_preview_test_mail_holds_only_our_headers(
    week_ready: Store, settings: Settings, tmp_path: Path
) -> None:
    message = send_test(
        week_ready, settings, Week(2026, 24), "editor@example.org", FileSender(tmp_path / "out")
    )
    [path] = (tmp_path / "out").rglob("*.eml")
    assert_exactly(
        path.read_bytes(),
        to="editor@example.org",
        subject=message.subject,
        fields=[*FIELDS, *message.headers],
    )


# --- the API senders' JSON ----------------------------------------------------------------


def _capture() -> tuple[list[httpx.Request], httpx.Client]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        path = request.url.path
        if path == "/email/batch":
            count = len(json.loads(request.content))
            return httpx.Response(200, json=[{"ErrorCode": 0, "MessageID": "x"}] * count)
        if path == "/emails/batch":
            count = len(json.loads(request.content))
            return httpx.Response(200, json={"data": [{"id": "x"}] * count})
        if path.endswith("/messages"):
            return httpx.Response(200, json={"id": "<x>", "message": "Queued. Thank you."})
        return httpx.Response(202, headers={"X-Message-Id": "x"})

    return seen, make_client("https://api.example.test", transport=httpx.MockTransport(handler))


def _header_values(request: httpx.Request) -> list[tuple[str, str]]:
    """Every (key, value) in the request that the provider turns into a header."""
    if request.url.path.endswith("/messages"):  # Mailgun: a form
        from urllib.parse import parse_qsl

        form = parse_qsl(request.content.decode())
        return [(k, v) for k, v in form if k in ("from", "to", "subject") or k.startswith("h:")]
    found: list[tuple[str, str]] = []
    bodies = ("html", "text", "htmlbody", "textbody", "content", "substitutions")

    def walk(value: object, key: str = "") -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                if k.lower() not in bodies:
                    walk(v, k)
        elif isinstance(value, list):
            for v in value:
                walk(v, key)
        elif isinstance(value, str):
            found.append((key, value))

    walk(json.loads(request.content))
    return found


@pytest.mark.parametrize("kind", ["postmark", "sendgrid", "mailgun", "resend"])
def test_api_senders_hand_over_no_hostile_header_value(settings: Settings, kind: str) -> None:
    seen, client = _capture()
    sender = {
        "postmark": lambda: PostmarkSender("token", client),
        "sendgrid": lambda: SendGridSender("key", client),
        "mailgun": lambda: MailgunSender("key", "mg.example.org", client),
        "resend": lambda: ResendSender("key", client),
    }[kind]()
    messages = []
    for i, hostile in enumerate(CORPUS.values()):
        composer = Composer(_rendered(hostile), settings, "secret", "2026-W24")
        reader = Subscriber(i + 1, f"r{i}@example.org", hostile, "active", f"n{i}")
        messages.append(composer.compose(reader))
    results = sender.send(messages)
    assert all(result.ok for result in results)
    values = [pair for request in seen for pair in _header_values(request)]
    assert values
    for key, value in values:
        check_field(key, value)  # no control character, line boundary or encoded word
        assert key.lower() not in ("bcc", "cc", "h:bcc", "h:cc")
        if key.lower() in ("to", "email"):  # only our readers (and SendGrid's from)
            assert re.fullmatch(r"r\d+@example\.org|brief@example\.org", value), value


def test_notice_html_escapes_every_value_it_shows(settings: Settings) -> None:
    """Where plain text becomes markup in a notice: the operator's texts are escaped too."""
    hostile = settings.replace(
        name="Brief <img src=x onerror=alert(1)>",
        tagline="<script>alert(2)</script>",
        postal_address='1 "Main" St <a href=javascript:alert(3)>',
    )
    for kind in ("confirm", "resubscribe", "already"):
        notice = Notice(9, "reader@example.org", "<b>Eve</b>", kind, 1_780_000_000.0, "nonce")
        message = compose_notice(hostile, "secret", notice)
        html = message.html
        assert "<img" not in html and "<script" not in html and "<a href=javascript" not in html
        assert "&lt;img src=x onerror=alert(1)&gt;" in html
        assert "<b>Eve</b>" not in html and "Eve" not in message.text
        mail = parse(message.as_bytes())
        assert str(mail["Subject"]).endswith("Brief <img src=x onerror=alert(1)>")  # text


def test_the_cli_and_an_import_refuse_an_encoded_word_name(run, tmp_path: Path) -> None:
    added = run("subscribers", "add", "eve@example.org", "--name", CORPUS["b-word"])
    assert added.exit_code == 1 and "encoded word" in added.output
    hostile_address = run("subscribers", "add", HOSTILE_ADDRESSES[0])
    assert hostile_address.exit_code == 1 and "encoded word" in hostile_address.output
    (tmp_path / "people.csv").write_text(
        "email,name\n"
        f'ok@example.org,Ada Lovelace\nbad@example.org,"{CORPUS["q-word"]}"\n'
        f'"{HOSTILE_ADDRESSES[1]}",Eve\n',
        encoding="utf-8",
    )
    imported = run("subscribers", "import", "people.csv", "--confirmed")
    assert imported.exit_code == 0, imported.output
    assert "line 3: invalid" in imported.output and "name: an encoded word" in imported.output
    assert "line 4: invalid" in imported.output
    assert "1 added" in imported.output
    listed = run("subscribers", "list").output
    assert "ok@example.org" in listed and "bad@example.org" not in listed and "eve@" not in listed
