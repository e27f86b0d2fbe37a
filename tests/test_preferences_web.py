"""A reader's preferences over real HTTP (waitress on 127.0.0.1), from the link in a real
dispatch `.eml` written by `newsletter send` through the file sender: sections, pause, a change
of address confirmed from the new address, unsubscribe; links that are not genuine change
nothing and all get the same answer; the welcome mail after a first confirmation."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage

import httpx
import pytest
from test_send_support import WEEK, ready_week
from test_web_live import SIGNUP_FORM, Live, link_path, serving, text_of

from newsletter.models import Subscriber
from newsletter.readers.subscriptions import add_subscriber
from newsletter.settings import load_settings
from newsletter.tokens import make_token, preferences_token

PREFS_LINK = re.compile(r"https?://[^\s\"<>]+(/preferences/[A-Za-z0-9_\-.]+)")


def dispatch_mails(live: Live, to: str) -> list[EmailMessage]:
    """The dispatches (not notices) the file sender wrote for `to`, oldest first."""
    found = []
    for path in sorted(live.settings.outbox.rglob("*.eml"), key=lambda p: p.stat().st_mtime_ns):
        mail = message_from_bytes(path.read_bytes(), policy=policy.default)
        assert isinstance(mail, EmailMessage)
        if mail["List-Unsubscribe"] and to in str(mail["To"]).lower():
            found.append(mail)
    return found


def everything_to(live: Live, to: str) -> list[EmailMessage]:
    """Every message addressed to `to`, dispatches and notices, in the order written."""
    live.app.extensions["newsletter"].mailer.drain()
    paths = sorted(live.settings.outbox.rglob("*.eml"), key=lambda p: p.stat().st_mtime_ns)
    found = []
    for path in paths:
        mail = message_from_bytes(path.read_bytes(), policy=policy.default)
        assert isinstance(mail, EmailMessage)
        if [a.addr_spec for a in mail["To"].addresses] == [to]:
            found.append(mail)
    return found


def prefs_path(mail: EmailMessage) -> str:
    """The "Manage preferences" link of a mail: the same one in its text and HTML parts."""
    text = PREFS_LINK.search(text_of(mail))
    html_part = mail.get_body(preferencelist=("html",))
    assert text, text_of(mail)
    assert html_part is not None
    html = html_part.get_content()
    assert f'href="{text.group(0)}"' in html and "Manage preferences" in html
    return text.group(1)


def form_fields(page: str) -> dict[str, list[str]]:
    """The checked checkboxes and hidden fields of the preferences form, as a browser posts."""
    fields: dict[str, list[str]] = {}
    for tag in re.findall(r"<input [^>]+>", page):
        name = re.search(r'name="([^"]+)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        kind = re.search(r'type="([^"]+)"', tag)
        if not name or not kind:
            continue
        if kind.group(1) in ("checkbox", "radio") and " checked" not in tag:
            continue
        if kind.group(1) in ("hidden", "checkbox", "radio"):
            fields.setdefault(name.group(1), []).append(value.group(1) if value else "")
    return fields


def post_prefs(live: Live, path: str, **change: str | list[str]) -> httpx.Response:
    page = live.client.get(path)
    assert page.status_code == 200, page.text
    fields: dict[str, str | list[str]] = dict(form_fields(page.text))
    fields.update(change)
    fields.setdefault("action", "save")
    return live.client.post(path, data=fields)


def send_week(run, week: str = str(WEEK)) -> None:
    result = run("send", "--week", week)
    assert result.exit_code == 0, result.output


@pytest.fixture
def readers(live: Live) -> dict[str, int]:
    """The sample week approved, Ada and Bob confirmed, the dispatch sent to both."""
    ready_week(live.store, live.settings)
    ids = {}
    for email in ("ada@example.org", "bob@example.org"):
        ids[email] = add_subscriber(live.store, email, confirmed=True).subscriber.id
    return ids


def stored(live: Live, subscriber_id: int) -> Subscriber:
    row = live.store.subscribers.get(subscriber_id)
    assert row is not None
    return Subscriber.from_row(row)


def test_a_reader_unticks_sections_from_the_link_in_a_real_dispatch(
    live: Live, readers: dict[str, int], run
) -> None:
    send_week(run)
    [mail] = dispatch_mails(live, "ada@example.org")
    path = prefs_path(mail)
    assert "/r/" not in path  # never a counted link: it carries the reader's token
    page = live.client.get(path)
    assert page.status_code == 200 and "Your preferences" in page.text
    assert "ada@example.org" in page.text and "<script" not in page.text
    titles = form_fields(page.text)["shown"]
    assert {"AI", "Energy", "Markets"} <= set(titles)
    assert form_fields(page.text)["section"] == titles  # all on by default

    saved = post_prefs(live, path, section=["AI"])
    assert saved.status_code == 200 and "Your preferences are saved." in saved.text
    ada = stored(live, readers["ada@example.org"])
    assert ada.wants("AI") and not ada.wants("Energy") and not ada.wants("Markets")
    assert ada.wants("A section that appears next month")  # only what was turned off is off
    assert stored(live, readers["bob@example.org"]).sections_off == frozenset()
    event = live.store.subscribers.events(ada.id)[-1]
    assert event["kind"] == "preferences.sections" and event["actor"] == "web"
    detail = json.loads(event["detail"])
    assert "Energy" in detail["off"] and "AI" not in detail["off"] and detail["ip"] == "127.0.0.1"
    assert event["at"]
    again = live.client.get(path)
    assert form_fields(again.text)["section"] == ["AI"]


def test_a_new_section_is_marked_new_and_on(live: Live, readers: dict[str, int], run) -> None:
    send_week(run)
    path = prefs_path(dispatch_mails(live, "ada@example.org")[0])
    post_prefs(live, path, section=["AI", "Energy"])
    with live.store.transaction():  # the editor's categories grow: a new section next week
        live.store.db.execute(
            "UPDATE dispatch_signals SET section = 'Space' WHERE signal_id ="
            " (SELECT max(signal_id) FROM dispatch_signals WHERE included = 1)"
        )
    page = live.client.get(path)
    assert re.search(
        r'value="Space" checked>\s*<label [^>]+>Space <span class="new">new', page.text
    )
    assert 'value="Markets">' in page.text  # still off, and not new
    post_prefs(live, path)
    assert stored(live, readers["ada@example.org"]).wants("Space")
    assert 'class="new"' not in live.client.get(path).text  # seen now


def _mac_swapped(token: str, other_id: int) -> str:
    """The same MAC over another reader's id: what a reader editing their link would make."""
    body, mac = token.split(".")
    issued = base64.urlsafe_b64decode(body + "==").decode().split(".")[1]
    new_body = base64.urlsafe_b64encode(f"{other_id}.{issued}".encode()).rstrip(b"=").decode()
    return f"{new_body}.{mac}"


def test_forged_altered_and_other_readers_tokens_change_nothing_and_look_alike(
    live: Live, readers: dict[str, int]
) -> None:
    ada_id, bob_id = readers["ada@example.org"], readers["bob@example.org"]
    ada = live.store.subscribers.get(ada_id)
    assert ada is not None
    genuine = preferences_token(live.secret, ada_id, ada["token_nonce"])
    last = genuine[-1]
    bad = [
        genuine[:-1] + ("A" if last != "A" else "B"),  # altered MAC
        _mac_swapped(genuine, bob_id),  # Ada's MAC, Bob's id
        preferences_token("another-secret-key-000000", bob_id, ada["token_nonce"]),  # forged
        make_token(live.secret, "unsubscribe", ada_id, ada["token_nonce"], issued_at=0),
        make_token(live.secret, "preferences", bob_id, ada["token_nonce"], issued_at=0),
        genuine + "=",
        "not-a-token",
    ]
    csrf = SIGNUP_FORM.search(live.client.get("/").text)
    assert csrf
    before = {
        i: (live.store.subscribers.get(i), live.store.subscribers.events(i))
        for i in readers.values()
    }
    answers = set()
    for token in bad:
        shown = live.client.get(f"/preferences/{token}")
        posted = live.client.post(
            f"/preferences/{token}",
            data={
                "csrf_token": csrf.group(1),
                "action": "save",
                "shown": "AI",
                "pause": "8",
                "email": "thief@example.net",
            },
        )
        left = live.client.post(
            f"/preferences/{token}", data={"csrf_token": csrf.group(1), "action": "unsubscribe"}
        )
        for answer in (shown, posted, left):
            assert answer.status_code == 404, (token, answer.text)
            answers.add(answer.text)
    assert len(answers) == 1  # one answer for all: nothing tells which reader or why
    after = {
        i: (live.store.subscribers.get(i), live.store.subscribers.events(i))
        for i in readers.values()
    }
    assert after == before
    assert live.mails("thief@example.net") == []
    # a genuine link without the form's CSRF pair changes nothing either
    refused = live.client.post(f"/preferences/{genuine}", data={"action": "unsubscribe"})
    assert refused.status_code == 403 and live.status("ada@example.org") == "active"


def test_pause_from_the_page_and_resume(live: Live, readers: dict[str, int]) -> None:
    ada_id = readers["ada@example.org"]
    row = live.store.subscribers.get(ada_id)
    assert row is not None
    path = f"/preferences/{preferences_token(live.secret, ada_id, row['token_nonce'])}"
    paused = post_prefs(live, path, pause="4")
    assert paused.status_code == 200 and "Nothing will be sent until" in paused.text
    ada = stored(live, ada_id)
    assert ada.paused_until is not None
    started = ada.paused_until - 4 * 7 * 86400
    assert ada.paused_at(started + 27 * 86400) and not ada.paused_at(started + 28 * 86400 + 1)
    page = live.client.get(path)
    assert "Paused until" in page.text and 'value="resume"' in page.text
    refused = post_prefs(live, path, pause="3")  # the page offers 2, 4 and 8 weeks
    assert refused.status_code == 400 and stored(live, ada_id).paused_until == ada.paused_until
    resumed = post_prefs(live, path, pause="resume")
    assert "Your pause has ended" in resumed.text
    assert stored(live, ada_id).paused_until is None
    kinds = [e["kind"] for e in live.store.subscribers.events(ada_id)]
    assert kinds[-2:] == ["preferences.paused", "preferences.resumed"]


def test_unsubscribe_from_the_preferences_page(live: Live, readers: dict[str, int]) -> None:
    ada_id = readers["ada@example.org"]
    row = live.store.subscribers.get(ada_id)
    assert row is not None
    path = f"/preferences/{preferences_token(live.secret, ada_id, row['token_nonce'])}"
    left = post_prefs(live, path, action="unsubscribe")
    assert left.status_code == 200 and "You are unsubscribed" in left.text
    assert live.status("ada@example.org") == "unsubscribed"
    event = live.store.subscribers.events(ada_id)[-1]
    assert event["kind"] == "subscriber.unsubscribed" and "preferences page" in event["detail"]
    ended = live.client.get(path)
    assert ended.status_code == 200 and "This subscription has ended" in ended.text


def _second_week(run) -> str:
    """Another dispatch for the week after, holding a signal of the sample week."""
    week = "2026-W25"
    for args in (
        ("dispatch", "build", "--week", week),
        ("dispatch", "pin", "2", "5", "--week", week),
        ("dispatch", "approve", "--week", week),
    ):
        result = run(*args)
        assert result.exit_code == 0, result.output
    return week


def test_a_change_of_address_takes_effect_when_the_new_address_confirms_it(
    live: Live, readers: dict[str, int], run
) -> None:
    send_week(run)
    ada_id = readers["ada@example.org"]
    old_path = prefs_path(dispatch_mails(live, "ada@example.org")[0])
    asked = post_prefs(live, old_path, email="Ada.New@Example.NET")
    assert asked.status_code == 200 and "sent a confirmation link to the new address" in asked.text
    assert live.store.subscribers.get(ada_id)["email"] == "ada@example.org"  # not yet
    assert "ada.new@example.net" in live.client.get(old_path).text  # waiting, says the page

    [confirm] = live.mails("ada.new@example.net")
    assert "Confirm your new address" in confirm["Subject"]
    assert confirm["To"].addresses[0].display_name == ""
    body = text_of(confirm)
    # whoever reads it may not be Ada: nothing in it acts on her subscription
    assert "/preferences/" not in body and "/unsubscribe/" not in body
    address = link_path(confirm, "address")
    page = live.client.get(address)  # a mail scanner's visit changes nothing
    assert page.status_code == 200 and "<button" in page.text
    assert live.store.subscribers.get(ada_id)["email"] == "ada@example.org"
    moved = live.client.post(address, data={"confirm": "yes"})
    assert moved.status_code == 200 and "Your address is changed" in moved.text
    row = live.store.subscribers.get(ada_id)
    assert row["email"] == "ada.new@example.net" and row["pending_email"] is None
    again = live.client.post(address, data={"confirm": "yes"})  # spent: its nonce was rotated
    assert again.status_code == 404 and live.store.subscribers.get(ada_id)["email"] == row["email"]
    changed = [
        e for e in live.store.subscribers.events(ada_id) if e["kind"] == "subscriber.email_changed"
    ]
    assert json.loads(changed[0]["detail"]) == {
        "old": "ada@example.org",
        "new": "ada.new@example.net",
    }
    # every link sent to the old address stopped working (the old address is not Ada's now)
    assert live.client.get(old_path).status_code == 404

    send_week(run, _second_week(run))
    old = everything_to(live, "ada@example.org")
    assert [m["Subject"] for m in old[-1:]] == ["Your address for The Brief has changed"]
    assert len(dispatch_mails(live, "ada@example.org")) == 1  # the first week's, before
    assert "/preferences/" not in text_of(old[-1]) and "/unsubscribe/" not in text_of(old[-1])
    new = everything_to(live, "ada.new@example.net")
    assert [bool(m["List-Unsubscribe"]) for m in new] == [False, True]  # confirm, then week 25
    assert prefs_path(new[-1]) != old_path
    assert live.client.get(prefs_path(new[-1])).status_code == 200


def test_a_taken_address_gets_the_same_answer_and_its_owner_is_told(
    live: Live, readers: dict[str, int]
) -> None:
    ada_id = readers["ada@example.org"]
    row = live.store.subscribers.get(ada_id)
    path = f"/preferences/{preferences_token(live.secret, ada_id, row['token_nonce'])}"
    free = post_prefs(live, path, email="nobody-yet@example.net")
    taken = post_prefs(live, path, email="bob@example.org")
    assert taken.status_code == free.status_code == 200

    def plain(page: str) -> str:  # the form's CSRF field is signed anew on every page
        return re.sub(r'name="csrf_token" value="[^"]+"', "", page)

    assert "sent a confirmation link" in taken.text and plain(taken.text) == plain(free.text)
    [told] = live.mails("bob@example.org")
    assert "Someone asked to move" in told["Subject"]
    assert "/address/" not in text_of(told)
    row = live.store.subscribers.get(ada_id)
    # the taken address changed nothing: the earlier request still waits for its confirmation
    assert row["email"] == "ada@example.org" and row["pending_email"] == "nobody-yet@example.net"
    assert len(live.mails("nobody-yet@example.net")) == 1


def test_an_invalid_new_address_saves_nothing(live: Live, readers: dict[str, int]) -> None:
    ada_id = readers["ada@example.org"]
    row = live.store.subscribers.get(ada_id)
    path = f"/preferences/{preferences_token(live.secret, ada_id, row['token_nonce'])}"
    answer = post_prefs(live, path, email="not an address", section=["AI"], pause="2")
    assert answer.status_code == 400 and "does not look like an email address" in answer.text
    ada = stored(live, ada_id)
    assert ada.sections_off == frozenset() and ada.paused_until is None


def test_the_welcome_arrives_once_after_a_first_confirmation(live: Live, run) -> None:
    ready_week(live.store, live.settings)
    add_subscriber(live.store, "bob@example.org", confirmed=True)
    send_week(run)  # the archive has its page now
    assert live.sign_up("grace@example.org").status_code == 200
    [confirm] = live.mails("grace@example.org")
    assert prefs_path(confirm)  # every notice carries the link
    path = link_path(confirm, "confirm")
    assert live.confirm(path).status_code == 200
    assert live.client.post(path, data={"confirm": "yes"}).status_code == 200  # used: nothing
    mails = everything_to(live, "grace@example.org")  # in the order written
    assert [m["Subject"] for m in mails] == [
        "Confirm your subscription to The Brief",
        "Welcome to The Brief",
    ]
    welcome = text_of(mails[1])
    assert live.settings.tagline in welcome  # the publication's note (NEWSLETTER_WELCOME_NOTE)
    assert "AI, Markets, Policy, Energy and Science" in welcome
    assert f"{live.settings.public_url}/archive/{WEEK}/" in welcome
    assert live.client.get(prefs_path(mails[1])).status_code == 200
    assert mails[1]["To"].addresses[0].display_name == ""
    row = live.store.subscribers.get_by_email("grace@example.org")
    [welcomed] = [n for n in live.store.notices.for_subscriber(row["id"]) if n["kind"] == "welcome"]
    assert welcomed["status"] == "sent"


def test_no_welcome_when_turned_off(web_env: dict[str, str]) -> None:
    settings = load_settings({**web_env, "NEWSLETTER_WELCOME": "false"}, env_file=None)
    with serving(settings) as live:
        live.sign_up("grace@example.org")
        live.confirm(link_path(live.mails("grace@example.org")[0], "confirm"))
        assert [m["Subject"] for m in live.mails("grace@example.org")] == [
            "Confirm your subscription to The Brief"
        ]


def test_json_sign_up_takes_sections(live: Live) -> None:
    origin = {"Origin": "https://partner.example"}
    ok = live.client.post(
        "/subscribe", json={"email": "js@example.org", "sections": ["ai", "Energy"]}, headers=origin
    )
    assert ok.status_code == 200 and ok.json()["ok"] is True
    row = live.store.subscribers.get_by_email("js@example.org")
    reader = Subscriber.from_row(row)
    assert reader.wants("AI") and reader.wants("Energy") and not reader.wants("Markets")
    assert reader.wants("A section from next year")
    consent = live.store.subscribers.events(row["id"])[0]
    assert "Markets" in json.loads(consent["detail"])["sections_off"]
    for sections, message in (
        (["AI", "Astrology"], "unknown section 'Astrology' (sections: AI, Markets"),
        ("AI", "sections: a list of section titles"),
        ([], "choose at least one section"),
    ):
        refused = live.client.post(
            "/subscribe", json={"email": "no@example.org", "sections": sections}, headers=origin
        )
        assert refused.status_code == 400 and message in refused.json()["error"], refused.text
    assert live.status("no@example.org") is None


def test_the_sign_up_form_offers_sections_when_set(web_env: dict[str, str]) -> None:
    settings = load_settings({**web_env, "NEWSLETTER_SIGNUP_SECTIONS": "true"}, env_file=None)
    with serving(settings) as live:
        page = live.client.get("/")
        assert page.text.count('name="section"') == len(settings.sections)
        answer = live.sign_up("form@example.org", sections_offered="1", section=["Energy"])  # type: ignore[arg-type]
        assert answer.status_code == 200
        reader = Subscriber.from_row(live.store.subscribers.get_by_email("form@example.org"))
        assert reader.wants("Energy") and not reader.wants("AI")
    # off by default: no checkboxes
    with serving(load_settings(web_env, env_file=None)) as plain:
        assert 'name="section"' not in plain.client.get("/").text


def test_only_the_latest_requests_link_changes_the_address(live: Live) -> None:
    """The address link of a request that a later one replaced does nothing, even from the
    same second (the link is signed for its address)."""
    result = add_subscriber(live.store, "eve@example.org", confirmed=True)
    row = live.store.subscribers.get(result.subscriber.id)
    path = f"/preferences/{preferences_token(live.secret, row['id'], row['token_nonce'])}"
    post_prefs(live, path, email="first@example.net")
    [first] = live.mails("first@example.net")
    post_prefs(live, path, email="second@example.net")
    stale = live.client.post(link_path(first, "address"), data={"confirm": "yes"})
    assert stale.status_code == 404  # signed for the first address: it moves nobody
    assert live.store.subscribers.get(row["id"])["email"] == "eve@example.org"
    [second] = live.mails("second@example.net")
    assert "changed" in live.client.post(link_path(second, "address"), data={"confirm": "yes"}).text
    assert live.store.subscribers.get(row["id"])["email"] == "second@example.net"


def test_the_one_click_unsubscribe_of_a_real_dispatch_acts_on_its_reader(
    live: Live, readers: dict[str, int], run
) -> None:
    """The List-Unsubscribe URL of a sent `.eml`, posted as a mailbox provider does (RFC 8058),
    unsubscribes that reader and no one else (the link is signed with the reader's own nonce,
    as the send loaded them)."""
    send_week(run)
    [mail] = dispatch_mails(live, "bob@example.org")
    url = re.search(r"<(https?://[^>]+/unsubscribe/[^>]+)>", str(mail["List-Unsubscribe"]))
    assert url is not None
    path = "/" + url.group(1).split("/", 3)[3]
    answer = live.client.post(
        path,
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 200
    assert stored(live, readers["bob@example.org"]).status == "unsubscribed"
    assert stored(live, readers["ada@example.org"]).status == "active"


def test_the_next_dispatch_holds_only_the_sections_a_reader_kept_on_her_page(
    live: Live, readers: dict[str, int], run
) -> None:
    """End to end: the link from a sent `.eml`, a section choice saved on the page, and the
    next week's `.eml` files: Ada's holds only AI, Bob's (who chose nothing) every section."""
    from variant_support import Mail

    send_week(run)
    [first] = dispatch_mails(live, "ada@example.org")
    saved = post_prefs(live, prefs_path(first), section=["AI"])
    assert saved.status_code == 200 and "Your preferences are saved." in saved.text

    week = "2026-W25"  # a new signal in each section, a week later
    for n, (category, score) in enumerate((("AI", 70), ("Energy", 80), ("Markets", 60))):
        live.store.signals.create(
            {
                "title": f"Week 25 {category} signal",
                "url": f"https://example.org/w25-{n}",
                "link": f"https://example.org/w25-{n}",
                "published": datetime(2026, 6, 16, tzinfo=UTC),
                "category": category,
                "signal_score": score,
                "why_now": "It happened this week.",
                "summary_text": "A summary.",
                "summary_html": "<p>A summary.</p>",
            }
        )
    for args in (("dispatch", "build", "--week", week), ("dispatch", "approve", "--week", week)):
        result = run(*args)
        assert result.exit_code == 0, result.output
    send_week(run, week)
    ada = Mail(dispatch_mails(live, "ada@example.org")[-1])
    bob = Mail(dispatch_mails(live, "bob@example.org")[-1])
    assert Mail(first).sections == ("AI", "Energy", "Markets")
    assert ada.sections == ("AI",) and "Energy" not in ada.html.split("Manage preferences")[0]
    assert bob.sections == ("AI", "Energy", "Markets")
    assert ada.lead == "Week 25 AI signal" and bob.lead == "Week 25 Energy signal"
    assert "Week 25 AI signal" in ada.subject and "Week 25 Energy signal" in bob.subject
