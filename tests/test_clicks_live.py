"""Click counting over real HTTP: the demo's dispatch sent as `.eml` files by the file sender,
its links followed against the real waitress server on 127.0.0.1, the rows read back."""

from __future__ import annotations

import email
import json
import re
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest

from newsletter.delivery.deliver import send_dispatch
from newsletter.delivery.senders import MemorySender
from newsletter.delivery.senders.file import FileSender
from newsletter.demo import SAMPLE_WEEK, load_sample
from newsletter.dispatch.build import approve, build_dispatch, choose
from newsletter.engagement.links import link_key
from newsletter.engagement.recorder import settle
from newsletter.preview import send_test
from newsletter.readers.subscriptions import add_subscriber
from newsletter.settings import Settings, load_settings
from newsletter.store import Store
from subscribers.clicks import recorder_of
from tests.test_web_live import Live, serving

BROWSER = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"
    " Version/17.4 Safari/605.1.15"
)
OTHER_BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:126.0) Gecko/20100101 Firefox/126.0"
TRACKED = re.compile(r"https?://[^\s\"<>]+/r/[A-Za-z0-9_.-]+")


def mails(outbox: Path) -> list[EmailMessage]:
    found = []
    for path in sorted(outbox.rglob("*.eml")):
        mail = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        assert isinstance(mail, EmailMessage)
        found.append(mail)
    return found


def part(mail: EmailMessage, kind: str) -> str:
    body = mail.get_body(preferencelist=(kind,))
    assert body is not None
    return str(body.get_content())


def read_at(mail: EmailMessage, source: str) -> str:
    """The href of the card's "Read at <source>" button in the HTML part."""
    html = part(mail, "html")
    match = re.search(rf'href="([^"]+)"[^>]*>\s*Read at {re.escape(source)}', html)
    assert match, f"no Read at {source} button"
    return match.group(1)


def path_of(url: str) -> str:
    return httpx.URL(url).raw_path.decode()


@pytest.fixture
def sent(run, env: dict[str, str], tmp_path: Path) -> Settings:
    """The demo: sample signals, three readers, the week's dispatch sent to the outbox."""
    result = run("demo")
    assert result.exit_code == 0, result.output
    return load_settings(env, env_file=None)


def counted(live: Live) -> list[tuple]:
    """Write what the worker holds, classify it all (no more hits will come), read the rows."""
    recorder_of(live.app).flush()
    settle(live.store, everything=True)
    rows = live.store.db.execute(
        "SELECT l.kind, l.url, c.human, c.reason, c.subscriber_id FROM clicks c"
        " JOIN tracked_links l ON l.key = c.link_key ORDER BY c.id"
    )
    return [tuple(row) for row in rows.fetchall()]


@pytest.fixture
def live(sent: Settings) -> Iterator[Live]:
    with serving(sent) as running:
        yield running
        recorder_of(running.app).close()


def test_a_link_from_a_real_eml_redirects_to_its_source_and_counts_one_human_click(
    live: Live, sent: Settings
) -> None:
    mail = mails(sent.outbox)[0]
    url = read_at(mail, "arXiv cs.LG")
    assert url.startswith(f"{sent.public_url}/r/")  # our own domain, never the source's
    assert url in part(mail, "plain")  # the text part carries the same tracked link
    answer = live.client.get(path_of(url), headers={"User-Agent": BROWSER})
    assert answer.status_code == 302
    assert answer.headers["Location"] == "https://arxiv.org/abs/2606.07527"
    assert answer.headers["Cache-Control"] == "no-store"
    assert answer.headers["Referrer-Policy"] == "no-referrer"
    assert counted(live) == [("read", "https://arxiv.org/abs/2606.07527", 1, None, None)]


def test_unsubscribe_and_list_headers_are_never_rewritten(sent: Settings) -> None:
    for mail in mails(sent.outbox):
        unsubscribe = re.search(r"<(https?://[^>]+)>", mail["List-Unsubscribe"])
        assert unsubscribe and "/unsubscribe/" in unsubscribe.group(1)
        html, text = part(mail, "html"), part(mail, "plain")
        assert f'href="{unsubscribe.group(1)}"' in html and unsubscribe.group(1) in text
        assert "arxiv.org/abs" not in html  # every content link is a counted one
        assert len(set(TRACKED.findall(html))) >= 9
        assert "counted per link, never per reader" in html


def test_forged_foreign_and_altered_tokens_lead_nowhere_and_count_nothing(
    live: Live, sent: Settings
) -> None:
    mail = mails(sent.outbox)[0]
    real = path_of(read_at(mail, "arXiv cs.LG"))
    key = real.rsplit("/", 1)[1]
    dispatch_id = live.store.dispatches.get("2026-W24")["id"]
    other_url = link_key(live.secret, dispatch_id, None, "read", "https://evil.example/phish")
    altered = key[:-1] + ("A" if key[-1] != "A" else "B")
    for path in (
        "/r/AAAAAAAAAAAA",  # forged: well formed, never stored
        f"/r/{other_url}",  # made with the secret key, for a URL the dispatch does not hold
        f"/r/{altered}",  # one character changed
        f"/r/{key}x",  # longer than a token
        f"/r/{key}.AAAAAAAAAAAAAAAA",  # a reader part nobody signed
        "/r/..%2F..%2Fetc",
    ):
        answer = live.client.get(path, headers={"User-Agent": BROWSER})
        assert answer.status_code == 404, path
        assert "Location" not in answer.headers
        assert "Page not found" in answer.text
    assert live.client.post(real).status_code in (404, 405)  # only GET and HEAD follow
    assert counted(live) == []
    assert not live.store.clicks.pending()


def test_a_scanner_burst_on_one_message_counts_as_automated(live: Live, sent: Settings) -> None:
    mail = mails(sent.outbox)[0]
    links = list(dict.fromkeys(TRACKED.findall(part(mail, "html"))))
    # a gateway posing as a browser follows every link of the message at once
    for url in links:
        assert live.client.get(path_of(url), headers={"User-Agent": BROWSER}).status_code == 302
    first = path_of(links[0])
    assert live.client.head(first, headers={"User-Agent": OTHER_BROWSER}).status_code == 302
    scanner = "Mozilla/5.0 (compatible; Barracuda Sentinel)"
    assert live.client.get(first, headers={"User-Agent": scanner}).status_code == 302
    # a person elsewhere opens one link
    assert live.client.get(first, headers={"User-Agent": OTHER_BROWSER}).status_code == 302
    rows = counted(live)
    assert len(rows) == len(links) + 3
    reasons = [reason for _, _, human, reason, _ in rows if not human]
    assert reasons.count("burst") == len(links)
    assert reasons.count("head") == 1 and reasons.count("agent") == 1
    first_link = live.store.clicks.link(first.rsplit("/", 1)[1])
    assert first_link is not None
    assert [row for row in rows if row[2]] == [
        (first_link["kind"], first_link["url"], 1, None, None)
    ]


def test_aggregate_mode_stores_nothing_that_identifies_a_reader(live: Live, sent: Settings) -> None:
    copies = mails(sent.outbox)
    assert len(copies) == 3
    # every reader's copy carries the same links: nothing in a click tells them apart
    carried = {tuple(dict.fromkeys(TRACKED.findall(part(m, "html")))) for m in copies}
    assert len(carried) == 1
    for url in next(iter(carried))[:2]:
        live.client.get(path_of(url), headers={"User-Agent": BROWSER})
    assert len(counted(live)) == 2
    readers = [r["email"] for r in live.store.subscribers.list()]
    ids = {str(r["id"]) for r in live.store.subscribers.list()}
    conn = sqlite3.connect(sent.db)
    tables = [t for (t,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    for table in tables:
        for row in conn.execute(f"SELECT * FROM [{table}]"):  # noqa: S608 - our own tables
            for value in row:
                text = str(value)
                assert "127.0.0.1" not in text, table  # the client's address, nowhere
                assert "Safari/605" not in text, table  # nor its user agent
                if table in ("tracked_links", "clicks", "click_totals", "click_queue"):
                    assert not any(address in text for address in readers), table
    for table in ("clicks", "click_queue"):
        kept = conn.execute(f"SELECT count(*) FROM [{table}] WHERE subscriber_id IS NOT NULL")  # noqa: S608
        assert kept.fetchone()[0] == 0
    columns = {row[1] for row in conn.execute("PRAGMA table_info(clicks)")}
    assert columns == {"id", "link_key", "hour", "human", "reason", "subscriber_id"}
    hours = [hour for (hour,) in conn.execute("SELECT hour FROM clicks")]
    assert all(hour % 3600 == 0 for hour in hours)  # the hour only, never the second
    assert conn.execute("SELECT count(*) FROM click_queue").fetchone()[0] == 0
    assert not ids & {str(v) for (v,) in conn.execute("SELECT subscriber_id FROM clicks")}
    conn.close()


def test_per_reader_mode_records_the_reader_and_erase_removes_them(
    run, env: dict[str, str]
) -> None:
    per_reader = {"NEWSLETTER_TRACKING": "per-reader"}
    assert run("demo", extra_env=per_reader).exit_code == 0
    settings = load_settings({**env, **per_reader}, env_file=None)
    copies = {str(m["To"]): m for m in mails(settings.outbox)}
    ada = copies["Ada Lovelace <ada@example.org>"]
    assert "records which of its links you follow" in part(ada, "html")
    assert "records which of its links" in part(ada, "plain")
    links = {str(m["To"]): read_at(m, "arXiv cs.LG") for m in copies.values()}
    assert len(set(links.values())) == 3  # each copy's links carry its reader
    with serving(settings) as live:
        answer = live.client.get(path_of(links[str(ada["To"])]), headers={"User-Agent": BROWSER})
        assert answer.status_code == 302
        assert answer.headers["Location"] == "https://arxiv.org/abs/2606.07527"
        ada_id = live.store.subscribers.get_by_email("ada@example.org")["id"]
        assert counted(live) == [("read", "https://arxiv.org/abs/2606.07527", 1, None, ada_id)]
        recorder_of(live.app).close()
    shown = json.loads(run("stats", "--json", extra_env=per_reader).stdout)
    arxiv = next(s for s in shown["signals"] if "Post-training" in s["title"])
    assert (arxiv["human"], arxiv["readers"]) == (1, 1)
    assert run("subscribers", "erase", "ada@example.org", "--yes").exit_code == 0
    conn = sqlite3.connect(settings.db)
    assert (
        conn.execute("SELECT count(*) FROM clicks WHERE subscriber_id IS NOT NULL").fetchone()[0]
        == 0
    )
    conn.close()
    after = json.loads(run("stats", "--json", extra_env=per_reader).stdout)
    arxiv = next(s for s in after["signals"] if "Post-training" in s["title"])
    assert (arxiv["human"], arxiv["readers"]) == (1, 0)  # the count stays, the reader goes


def test_a_test_message_link_works_counts_nothing_and_goes_if_the_freeze_drops_it(
    store: Store, settings: Settings
) -> None:
    """Before sending, the editor's test message has working links whose clicks are not
    readers'; at the freeze, links only a test message carried stop working."""
    load_sample(store, now=datetime(2026, 6, 14, tzinfo=UTC))
    dispatch = build_dispatch(store, settings, SAMPLE_WEEK)
    with FileSender(settings.outbox) as sender:
        send_test(store, settings, SAMPLE_WEEK, "editor@example.org", sender)
    test_mail = mails(settings.outbox)[0]
    arxiv = read_at(test_mail, "arXiv cs.LG")
    drafted = {row["url"]: row for row in store.clicks.links(dispatch.id)}
    battery = drafted["https://filings.example.org/2026/06/battery-procurement"]
    assert not battery["frozen"]
    battery_url = f"{settings.public_url}/r/{battery['key']}"
    assert battery_url in part(test_mail, "html")
    with serving(settings) as live:
        assert live.client.get(path_of(arxiv), headers={"User-Agent": BROWSER}).status_code == 302
        assert live.client.get(path_of(battery_url)).status_code == 302
        assert counted(live) == []  # a test message's click is nobody's
        dropped = next(s for s in dispatch.signals if "battery" in s.title)
        choose(store, settings, SAMPLE_WEEK, [dropped.id], drop=True)
        approve(store, settings, SAMPLE_WEEK)
        add_subscriber(store, "reader@example.org", confirmed=True)
        send_dispatch(store, settings, MemorySender(), SAMPLE_WEEK)
        assert live.client.get(path_of(battery_url)).status_code == 404  # not in what was sent
        kept = live.client.get(path_of(arxiv), headers={"User-Agent": BROWSER})
        assert kept.status_code == 302  # the same link is in the frozen copy: it counts now
        assert counted(live) == [("read", "https://arxiv.org/abs/2606.07527", 1, None, None)]
        recorder_of(live.app).close()


def test_a_confirmation_mail_keeps_its_own_links(live: Live) -> None:
    assert live.sign_up("new.reader@example.org").status_code == 200
    (mail,) = live.mails("new.reader@example.org")
    text = part(mail, "plain")
    assert "/confirm/" in text and "/r/" not in text and "/r/" not in part(mail, "html")
