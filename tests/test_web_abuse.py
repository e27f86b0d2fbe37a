"""Abuse of the public form over real HTTP: CSRF, honeypot, rate limits, hostile input."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from test_web_live import Live, serving, text_of

from newsletter.settings import load_settings


def count(live: Live) -> int:
    return live.store.db.execute("SELECT count(*) FROM subscribers").fetchone()[0]


def test_post_without_csrf_token_is_refused_and_stores_nothing(live: Live) -> None:
    bare = httpx.post(live.url + "/subscribe", data={"email": "a@example.org"})
    assert bare.status_code == 403 and "This form has expired" in bare.text
    live.form_token()  # cookie set, but the field is missing
    no_field = live.client.post("/subscribe", data={"email": "b@example.org"})
    assert no_field.status_code == 403
    forged = live.client.post(
        "/subscribe", data={"email": "c@example.org", "csrf_token": "made.up.value"}
    )
    assert forged.status_code == 403
    token = live.form_token()
    other_browser = httpx.post(
        live.url + "/subscribe",
        data={"email": "d@example.org", "csrf_token": token},
        cookies={"nl_csrf": "a-cookie-from-another-browser-0000"},
    )
    assert other_browser.status_code == 403
    assert count(live) == 0


def test_honeypot_gets_the_usual_answer_and_nothing_is_stored(live: Live) -> None:
    answer = live.sign_up("bot@example.org", website="http://spam.example")
    assert answer.status_code == 200 and "Check your inbox" in answer.text
    assert count(live) == 0 and live.mails() == []


@pytest.fixture
def limited(web_env: dict[str, str]) -> Iterator[Live]:
    env = {**web_env, "NEWSLETTER_SIGNUP_IP_LIMIT": "20"}
    with serving(load_settings(env, env_file=None)) as server:
        yield server


def test_a_thousand_sign_ups_from_one_ip_hit_the_rate_limit(limited: Live) -> None:
    token = limited.form_token()
    statuses = []
    for i in range(1000):
        response = limited.client.post(
            "/subscribe", data={"email": f"flood{i}@example.org", "csrf_token": token}
        )
        statuses.append(response.status_code)
    assert statuses[:20] == [200] * 20
    assert statuses[20:] == [429] * 980
    assert count(limited) == 20
    refused = limited.client.post(
        "/subscribe", data={"email": "late@example.org", "csrf_token": token}
    )
    assert refused.headers["retry-after"] == "3600"


def test_one_address_is_limited_whatever_the_ip(live: Live) -> None:
    statuses = [live.sign_up("target@example.org").status_code for _ in range(7)]
    assert statuses == [200] * 5 + [429] * 2
    assert len(live.mails("target@example.org")) == 1


@pytest.mark.parametrize(
    "email",
    [
        "victim@example.org\r\nBcc: everyone@example.org",
        "victim@example.org\nX-Injected: 1",
        "a" * 10_000 + "@example.org",
        "<script>alert(1)</script>@example.org",
        "x'; DROP TABLE subscribers; --@example.org",
        "not an address",
        "",
    ],
)
def test_hostile_addresses_are_refused_with_the_form_shown_again(live: Live, email: str) -> None:
    answer = live.sign_up(email)
    assert answer.status_code == 400
    assert "does not look like an email address" in answer.text
    assert "<script>alert" not in answer.text
    assert 'name="csrf_token"' in answer.text  # the visitor can correct it and retry
    assert count(live) == 0 and live.mails() == []


@pytest.mark.parametrize(
    "name",
    [
        "Eve\r\nBcc: everyone@example.org",
        "<img src=x onerror=alert(1)>",
        "Robert'); DROP TABLE subscribers;--",
        "N" * 10_000,
        '"=HYPERLINK(""http://evil.example"")',
        "Zoë 山田 \u202e",
    ],
)
def test_hostile_names_are_stored_inertly_and_break_no_header(live: Live, name: str) -> None:
    assert live.sign_up("eve@example.org", name).status_code == 200
    row = live.store.subscribers.get_by_email("eve@example.org")
    assert row is not None
    stored = row["name"] or ""
    assert "\r" not in stored and "\n" not in stored and len(stored) <= 200
    [mail] = live.mails()
    assert mail["Bcc"] is None
    assert mail["To"].addresses[0].addr_spec == "eve@example.org"
    html = mail.get_body(preferencelist=("html",)).get_content()  # type: ignore[union-attr]
    assert "<img src=x" not in html
    assert text_of(mail)
    assert live.store.db.execute("SELECT count(*) FROM subscribers").fetchone()[0] == 1


def test_a_huge_post_is_refused_before_it_is_read(live: Live) -> None:
    token = live.form_token()
    answer = live.client.post(
        "/subscribe",
        data={"email": "big@example.org", "name": "x" * 40_000, "csrf_token": token},
    )
    assert answer.status_code == 413
    assert count(live) == 0


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("Zoe@Exämple.org", "zoe@exämple.org"),
        ("user@xn--bcher-kva.example", "user@bücher.example"),
        ("  Mixed.Case@EXAMPLE.org ", "mixed.case@example.org"),
    ],
)
def test_unicode_and_idn_addresses_are_normalised(live: Live, given: str, stored: str) -> None:
    assert live.sign_up(given).status_code == 200
    assert live.status(stored) == "pending"
    [mail] = live.mails()
    # the domain goes into the header as A-labels (punycode)
    assert mail["To"].addresses[0].addr_spec == stored.split("@")[0] + "@" + (
        stored.split("@")[1].encode("idna").decode()
    )


def test_a_non_ascii_local_part_is_refused_no_sender_can_write_it(live: Live) -> None:
    answer = live.sign_up("Zoë@Exämple.org")
    assert answer.status_code == 400
    assert count(live) == 0 and live.mails() == []


def test_malformed_json_is_refused_cleanly(live: Live) -> None:
    origin = {"Origin": "https://partner.example"}
    for body in (b"[1, 2]", b'{"email": ["a@example.org"]}', b"{not json", b'"text"'):
        answer = httpx.post(
            live.url + "/subscribe",
            content=body,
            headers={**origin, "Content-Type": "application/json"},
        )
        assert answer.status_code == 400, body
        assert answer.json()["ok"] is False
    assert count(live) == 0
