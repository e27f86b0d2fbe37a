"""The web service as a real waitress server on 127.0.0.1, driven over HTTP with httpx.

The `live` fixture here is imported by the other web test modules.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from flask import Flask
from waitress import wasyncore

from newsletter.settings import Settings, load_settings
from newsletter.store import Store
from newsletter.tokens import make_token, unsubscribe_token
from subscribers import create_app
from subscribers.server import make_server

WEB_ENV = {"NEWSLETTER_CORS_ORIGINS": "https://partner.example"}
SIGNUP_FORM = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Live:
    url: str
    settings: Settings
    app: Flask
    client: httpx.Client

    @property
    def store(self) -> Store:
        return self.app.extensions["newsletter"].store

    @property
    def secret(self) -> str:
        return self.app.extensions["newsletter"].secret

    def form_token(self) -> str:
        """Load the sign-up page as a browser would (sets the CSRF cookie on the client)."""
        page = self.client.get("/")
        assert page.status_code == 200
        match = SIGNUP_FORM.search(page.text)
        assert match, "the sign-up page has no CSRF field"
        return match.group(1)

    def sign_up(self, email: str, name: str = "", **extra: str) -> httpx.Response:
        data = {"email": email, "name": name, "website": "", "csrf_token": self.form_token()}
        return self.client.post("/subscribe", data={**data, **extra})

    def mails(self, to: str | None = None) -> list[EmailMessage]:
        """Every notice the file sender wrote so far (after the background sends finish)."""
        self.app.extensions["newsletter"].mailer.drain()
        found = []
        for path in sorted(self.settings.outbox.rglob("*.eml")):
            mail = message_from_bytes(path.read_bytes(), policy=policy.default)
            assert isinstance(mail, EmailMessage)
            if to is None or to.lower() in str(mail["To"]).lower():
                found.append(mail)
        return found

    def confirm(self, path: str) -> httpx.Response:
        """Open a confirmation link and press its button, as a person does."""
        page = self.client.get(path)
        assert page.status_code == 200 and "<button" in page.text, page.text
        return self.client.post(path, data={"confirm": "yes"})

    def status(self, email: str) -> str | None:
        row = self.store.subscribers.get_by_email(email)
        return row["status"] if row else None


def text_of(mail: EmailMessage) -> str:
    part = mail.get_body(preferencelist=("plain",))
    assert part is not None
    return part.get_content()


def link_path(mail: EmailMessage, kind: str) -> str:
    """The path of the first /confirm/ or /unsubscribe/ link in a mail's text part."""
    match = re.search(rf"https?://\S+(/{kind}/[A-Za-z0-9_\-.]+)", text_of(mail))
    assert match, f"no /{kind}/ link in:\n{text_of(mail)}"
    return urlsplit(match.group(0)).path


@contextmanager
def serving(settings: Settings) -> Iterator[Live]:
    """The app under waitress on 127.0.0.1, in a thread; stopped cleanly however loaded the
    machine is.

    Everything that touches the server's sockets happens on the server's own thread: its loop
    polls until told to stop; then its request threads are shut down and waited for (they pull
    the loop's trigger pipe when a response is ready, and each holds its own database
    connection), and only then are the channels, the trigger and the listening socket closed.
    Closing them from another thread, or while a request thread may still pull the trigger,
    wrote to a closed file descriptor (EBADF in `trigger.pull_trigger`) on a busy machine.
    """
    app = create_app(settings)
    # the production configuration (subscribers.server), on an ephemeral port
    server = make_server(
        app, settings, host="127.0.0.1", port=0, threads=8, asyncore_loop_timeout=0.05
    )
    stopping = threading.Event()

    def run() -> None:
        try:
            while not stopping.is_set():
                wasyncore.loop(timeout=0.05, map=server._map, count=1)
        finally:
            server.task_dispatcher.shutdown(cancel_pending=True, timeout=30)
            wasyncore.close_all(server._map)

    thread = threading.Thread(target=run, name="waitress", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.effective_port}"
    try:
        with httpx.Client(base_url=url, timeout=10) as client:
            yield Live(url, settings, app, client)
    finally:
        stopping.set()
        thread.join(60)
        app.extensions["newsletter"].mailer.shutdown()
        assert not thread.is_alive(), "the test server did not stop"


def test_healthz_answers_ok(live: Live) -> None:
    response = live.client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_pages_carry_the_brand_and_lock_down_the_browser(live: Live) -> None:
    page = live.client.get("/")
    assert "The Brief" in page.text
    assert "Stay ahead of the systems reshaping markets." in page.text
    assert live.settings.consent_text in page.text
    assert "<script" not in page.text
    assert 'name="viewport"' in page.text
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["referrer-policy"] == "no-referrer"
    css = live.client.get("/static/site.css")
    assert css.headers["content-type"].startswith("text/css")
    assert live.settings.accent_color in css.text


def test_sign_up_confirm_and_one_click_unsubscribe(live: Live) -> None:
    answer = live.sign_up("Ada@Example.ORG", "Ada Lovelace")
    assert answer.status_code == 200 and "Check your inbox" in answer.text
    assert live.status("ada@example.org") == "pending"
    row = live.store.subscribers.get_by_email("ada@example.org")
    assert row is not None
    assert row["consent_text"] == live.settings.consent_text
    assert row["consent_ip"] == "127.0.0.1" and row["consent_form"] == "form at /"

    [mail] = live.mails()
    assert mail["To"].addresses[0].addr_spec == "ada@example.org"
    assert "Confirm your subscription to The Brief" in mail["Subject"]
    confirmed = live.confirm(link_path(mail, "confirm"))
    assert confirmed.status_code == 200 and "You are subscribed" in confirmed.text
    assert live.status("ada@example.org") == "active"

    # exactly the link compose.py puts in every dispatch's List-Unsubscribe header
    path = f"/unsubscribe/{unsubscribe_token(live.secret, row['id'], row['token_nonce'])}"
    one_click = httpx.post(
        live.url + path,
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert one_click.status_code == 200 and "You are unsubscribed" in one_click.text
    assert live.status("ada@example.org") == "unsubscribed"
    kinds = [e["kind"] for e in live.store.subscribers.events(row["id"])]
    assert kinds == [
        "subscriber.pending",
        "notice.confirm",
        "subscriber.active",
        "subscriber.unsubscribed",
    ]


def test_unsubscribe_page_shows_a_button_and_changes_nothing_until_pressed(live: Live) -> None:
    live.sign_up("grace@example.org")
    live.confirm(link_path(live.mails()[0], "confirm"))
    row = live.store.subscribers.get_by_email("grace@example.org")
    assert row is not None
    path = f"/unsubscribe/{unsubscribe_token(live.secret, row['id'], row['token_nonce'])}"
    page = httpx.get(live.url + path)  # what a link scanner does
    assert page.status_code == 200 and "<button" in page.text
    assert live.status("grace@example.org") == "active"
    pressed = httpx.post(live.url + path, data={})
    assert pressed.status_code == 200
    assert live.status("grace@example.org") == "unsubscribed"
    again = httpx.post(live.url + path, data={})
    assert again.status_code == 200 and "You are unsubscribed" in again.text


def test_confirmation_link_works_once(live: Live) -> None:
    live.sign_up("once@example.org")
    path = link_path(live.mails()[0], "confirm")
    assert "You are subscribed" in live.confirm(path).text
    live.store.subscribers.set_status(
        live.store.subscribers.get_by_email("once@example.org")["id"],  # type: ignore[index]
        "unsubscribed",
        actor="test",
    )
    second = live.client.post(path, data={"confirm": "yes"})
    assert "already been used" in second.text
    assert "already been used" in live.client.get(path).text
    assert live.status("once@example.org") == "unsubscribed"


@pytest.mark.parametrize(
    "mangle",
    [
        lambda token: token[:-1] + ("A" if token[-1] != "A" else "B"),  # altered signature
        lambda token: "MQ.0" + token[4:],  # another subscriber id, same signature
        lambda token: "not-a-token",
        lambda token: "x" * 5000,
    ],
)
def test_forged_or_altered_tokens_get_a_clear_page_and_change_nothing(live: Live, mangle) -> None:
    live.sign_up("forge@example.org")
    good = link_path(live.mails()[0], "confirm").rsplit("/", 1)[1]
    row = live.store.subscribers.get_by_email("forge@example.org")
    assert row is not None
    bad = mangle(good)
    for path in (f"/confirm/{bad}", f"/unsubscribe/{bad}"):
        response = live.client.get(path)
        assert response.status_code in (404, 414), path
        if response.status_code == 404:
            assert "This link is not valid" in response.text
    token = unsubscribe_token(live.secret, row["id"], row["token_nonce"])
    posted = live.client.post(f"/unsubscribe/{mangle(token)}")
    assert posted.status_code in (404, 414)
    assert live.status("forge@example.org") == "pending"


def test_expired_confirmation_link_changes_nothing(live: Live) -> None:
    live.sign_up("late@example.org")
    row = live.store.subscribers.get_by_email("late@example.org")
    assert row is not None
    eight_days_ago = int(time.time()) - 8 * 86400
    token = make_token(
        live.secret, "confirm", row["id"], row["token_nonce"], issued_at=eight_days_ago
    )
    response = live.client.get(f"/confirm/{token}")
    assert response.status_code == 410 and "expired" in response.text
    assert live.status("late@example.org") == "pending"


def test_a_known_address_gets_the_same_answer_and_a_mail_saying_what_happened(
    live: Live,
) -> None:
    live.store.subscribers.add("active@example.org", name=None, status="active", actor="test")
    live.store.subscribers.add("left@example.org", name=None, status="unsubscribed", actor="test")
    live.store.subscribers.add("bounce@example.org", name=None, status="bounced", actor="test")
    answers = {
        email: live.sign_up(email)
        for email in (
            "new@example.org",
            "active@example.org",
            "left@example.org",
            "bounce@example.org",
        )
    }
    first = answers["new@example.org"]
    for email, answer in answers.items():
        assert answer.status_code == first.status_code, email
        assert answer.text == first.text, email
    assert live.status("active@example.org") == "active"
    assert live.status("left@example.org") == "unsubscribed"

    [already] = live.mails("active@example.org")
    assert "already subscribed" in text_of(already)
    [again] = live.mails("left@example.org")
    assert "unsubscribed earlier" in text_of(again)
    assert live.mails("bounce@example.org") == []  # never mailed again

    back = live.confirm(link_path(again, "confirm"))
    assert "You are subscribed" in back.text
    assert live.status("left@example.org") == "active"


def test_pending_sign_up_again_resends_at_most_once_an_hour(live: Live) -> None:
    for _ in range(3):
        assert live.sign_up("twice@example.org").status_code == 200
    assert len(live.mails("twice@example.org")) == 1
    row = live.store.subscribers.get_by_email("twice@example.org")
    assert row is not None
    live.store.db.execute(
        "UPDATE subscribers SET notice_sent_at = notice_sent_at - 3601 WHERE id = ?", [row["id"]]
    )
    live.sign_up("twice@example.org")
    assert len(live.mails("twice@example.org")) == 2


def test_json_sign_up_from_an_allowed_origin_with_cors(live: Live) -> None:
    origin = {"Origin": "https://partner.example"}
    preflight = httpx.options(
        live.url + "/subscribe",
        headers={**origin, "Access-Control-Request-Method": "POST"},
    )
    assert preflight.headers["access-control-allow-origin"] == "https://partner.example"
    answer = httpx.post(live.url + "/subscribe", json={"email": "js@example.org"}, headers=origin)
    assert answer.status_code == 200 and answer.json()["ok"] is True
    assert answer.headers["access-control-allow-origin"] == "https://partner.example"
    assert live.status("js@example.org") == "pending"
    row = live.store.subscribers.get_by_email("js@example.org")
    assert row is not None and row["consent_form"] == "json from https://partner.example"

    embedded = httpx.post(
        live.url + "/subscribe", data={"email": "embed@example.org"}, headers=origin
    )
    assert embedded.status_code == 200 and "Check your inbox" in embedded.text
    assert live.status("embed@example.org") == "pending"

    elsewhere = httpx.post(
        live.url + "/subscribe",
        json={"email": "evil@example.org"},
        headers={"Origin": "https://evil.example"},
    )
    assert elsewhere.status_code == 403
    assert "access-control-allow-origin" not in elsewhere.headers
    assert live.status("evil@example.org") is None


def test_archive_serves_the_published_folder(web_env: dict[str, str], tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    settings = load_settings({**web_env, "NEWSLETTER_WEB_ARCHIVE_DIR": str(archive)}, None)
    with serving(settings) as live:
        assert live.client.get("/archive/").status_code == 404
        (archive / "2026-W24").mkdir(parents=True)
        (archive / "index.html").write_text("<h1>Past issues</h1>")
        (archive / "2026-W24" / "index.html").write_text("<p>Issue 1</p>")
        assert "Past issues" in live.client.get("/archive/").text
        assert "Issue 1" in live.client.get("/archive/2026-W24/").text
        assert live.client.get("/archive/../newsletter.db").status_code == 404
