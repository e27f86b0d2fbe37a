"""Attacks on the sign-up form and the links in mail, over real HTTP against waitress:
encoded-word names, link scanners, forged posts, links that outlive their owner."""

from __future__ import annotations

import httpx
import pytest
from test_header_injection import CORPUS, assert_exactly
from test_web_live import Live, link_path, text_of

from newsletter.readers.subscriptions import erase
from newsletter.tokens import unsubscribe_token

ENCODED = ["b-word", "q-word", "folded", "nested", "new-body", "split-by-nul", "fullwidth"]


@pytest.mark.parametrize("key", ENCODED)
def test_an_encoded_word_name_is_refused_and_nothing_is_mailed(live: Live, key: str) -> None:
    form = live.sign_up("victim@example.org", CORPUS[key])
    assert form.status_code == 400 and "write your name as plain text" in form.text
    posted = httpx.post(
        live.url + "/subscribe",
        json={"email": "victim@example.org", "name": CORPUS[key]},
        headers={"Origin": "https://partner.example"},
    )
    assert posted.status_code == 400 and posted.json()["ok"] is False
    assert live.status("victim@example.org") is None and live.mails() == []


@pytest.mark.parametrize("key", ["raw-crlf", "line-separator", "next-line", "link", "huge"])
def test_what_a_stranger_types_as_a_name_never_reaches_the_mail(live: Live, key: str) -> None:
    assert live.sign_up("victim@example.org", CORPUS[key]).status_code == 200
    [mail] = live.mails()
    raw = mail.as_bytes()
    assert_exactly(
        next(iter(live.settings.outbox.rglob("*.eml"))).read_bytes(),
        to="victim@example.org",
        subject="Confirm your subscription to The Brief",
        fields=["From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type",
                "Auto-Submitted"],
    )  # fmt: skip
    assert mail["To"].addresses[0].display_name == ""
    assert text_of(mail).startswith("Hello,")
    for piece in ("Bob", "evil.example", "NNNN"):
        assert piece.encode() not in raw


def test_link_scanners_confirm_nobody(live: Live) -> None:
    live.sign_up("scanned@example.org")
    path = link_path(live.mails()[0], "confirm")
    for method in ("GET", "HEAD", "GET"):  # what mail security gateways do with every link
        response = httpx.request(method, live.url + path)
        assert response.status_code == 200
    assert live.status("scanned@example.org") == "pending"
    page = httpx.get(live.url + path).text
    assert "<button" in page and 'method="post"' in page
    # a POST that is not our button's (a blind scanner, a bare form) only shows the page
    bare = httpx.post(live.url + path)
    assert bare.status_code == 200 and "<button" in bare.text
    assert live.status("scanned@example.org") == "pending"
    pressed = httpx.post(live.url + path, data={"confirm": "yes"})
    assert "You are subscribed" in pressed.text
    assert live.status("scanned@example.org") == "active"


def test_a_form_on_another_site_cannot_confirm_without_the_link(live: Live) -> None:
    live.sign_up("target@example.org")
    row = live.store.subscribers.get_by_email("target@example.org")
    assert row is not None
    forged = unsubscribe_token(live.secret, row["id"], "a-guessed-nonce")
    for path in (f"/confirm/{forged}", f"/unsubscribe/{forged}"):
        response = httpx.post(
            live.url + path,
            data={"confirm": "yes"},
            headers={"Origin": "https://evil.example", "Referer": "https://evil.example/"},
        )
        assert response.status_code == 404
    assert live.status("target@example.org") == "pending"


def test_an_erased_persons_links_never_act_on_whoever_comes_next(live: Live) -> None:
    live.sign_up("first@example.org")
    old_confirm = link_path(live.mails("first@example.org")[0], "confirm")
    first = live.store.subscribers.get_by_email("first@example.org")
    assert first is not None
    old_leave = f"/unsubscribe/{unsubscribe_token(live.secret, first['id'], first['token_nonce'])}"
    erase(live.store, "first@example.org")

    live.sign_up("second@example.org")
    assert len(live.mails("second@example.org")) == 1  # sent: the workers are done with it
    second = live.store.subscribers.get_by_email("second@example.org")
    assert second is not None and second["id"] > first["id"]
    # the worst case: the id comes back anyway (a database restored from an old backup)
    # (with the rows that refer to it: its queued confirmation mail)
    live.store.db.execute("PRAGMA foreign_keys = OFF")
    for table, column in (("subscribers", "id"), ("notices", "subscriber_id")):
        live.store.db.execute(
            f"UPDATE {table} SET {column} = ? WHERE {column} = ?",  # noqa: S608
            [first["id"], second["id"]],
        )
    live.store.db.execute("PRAGMA foreign_keys = ON")
    assert httpx.post(live.url + old_confirm, data={"confirm": "yes"}).status_code == 404
    assert live.status("second@example.org") == "pending"  # no double opt-in bypass

    live.store.subscribers.set_status(first["id"], "active", actor="test")
    one_click = httpx.post(
        live.url + old_leave,
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert one_click.status_code == 404
    assert live.status("second@example.org") == "active"
