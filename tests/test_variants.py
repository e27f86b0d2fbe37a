"""Per-reader variants: a send renders one variant per distinct set of sections its readers
chose (never one per reader), each reader gets exactly their sections with the lead and subject
of what they get, and readers who are paused or left nothing are skipped with the reason."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

import mjml
import pytest
from test_send_support import WEEK, add_subscribers, ready_week
from variant_support import (
    CHIPMAKER,
    INTERCONNECTION,
    LEADS,
    POST_TRAINING,
    SECTIONS,
    SIGNALS,
    Mail,
    choose,
    outbox_mails,
)

from newsletter.delivery.deliver import send_dispatch
from newsletter.delivery.senders.file import FileSender
from newsletter.dispatch.build import approve, build_dispatch, edit_text, load_dispatch
from newsletter.dispatch.variants import parse_sections, reader_key, variant_dispatch
from newsletter.errors import DispatchError
from newsletter.settings import Settings
from newsletter.store import Store
from newsletter.weeks import Week

DAY = 86_400.0


@pytest.fixture
def compiles(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every MJML compile of the test, counted at the compile function itself."""
    counted: list[int] = []
    real = mjml.mjml2html
    monkeypatch.setattr(mjml, "mjml2html", lambda *a, **k: counted.append(1) or real(*a, **k))
    return counted


def _readers(store: Store) -> dict[str, str]:
    """Eight readers over three section sets, one who left herself nothing, one paused."""
    emails = add_subscribers(store, 8)
    choices = {
        emails[0]: (),  # everything
        emails[1]: ("Crypto",),  # turned off a section that is not in this week: everything
        emails[2]: ("Markets",),  # AI and Energy
        emails[3]: ("Markets",),
        emails[4]: ("AI", "Markets"),  # Energy only
        emails[5]: ("AI", "Energy", "Markets"),  # nothing this week
        emails[6]: (),  # paused
        emails[7]: ("Energy",),  # AI and Markets
    }
    for address, off in choices.items():
        choose(store, address, off=off)
    return {address: ",".join(off) for address, off in choices.items()}


def _by_reader(store: Store) -> dict[str, dict]:
    dispatch_id = store.dispatches.get(str(WEEK))["id"]
    return {
        row[0]: {"status": row[1], "reason": row[2], "variant": row[3]}
        for row in store.db.execute(
            "SELECT s.email, d.status, d.last_error, d.variant_id FROM deliveries d"
            " JOIN subscribers s ON s.id = d.subscriber_id WHERE d.dispatch_id = ?",
            [dispatch_id],
        )
    }


def test_each_reader_gets_their_sections_with_the_lead_and_subject_of_what_they_get(
    store: Store, settings: Settings, compiles: list[int]
) -> None:
    ready_week(store, settings)
    readers = _readers(store)
    emails = list(readers)
    now = time.time()
    choose(store, emails[6], paused_until=now + 14 * DAY)
    compiles.clear()  # building the week compiled nothing, but be sure
    report = send_dispatch(store, settings, FileSender(settings.outbox), WEEK, now=lambda: now)

    # one compile per distinct variant among the readers sent to (all; AI+Energy; Energy;
    # AI+Markets), never one per reader
    assert len(compiles) == 4 == report.compiles
    mails = {mail.to: mail for mail in outbox_mails(settings.outbox / str(WEEK))}
    assert set(mails) == set(emails) - {emails[5], emails[6]}
    expected = {
        emails[0]: SECTIONS,
        emails[1]: SECTIONS,
        emails[2]: ("AI", "Energy"),
        emails[3]: ("AI", "Energy"),
        emails[4]: ("Energy",),
        emails[7]: ("AI", "Markets"),
    }
    for address, sections in expected.items():
        mail = mails[address]
        assert mail.sections == sections, address
        assert mail.cards == sum(SIGNALS[s] for s in sections)
        assert mail.lead == LEADS[sections]
        more = mail.cards - 1
        assert mail.subject == LEADS[sections] + (f" + {more} more" if more else "")
        for other in set(SECTIONS) - set(sections):  # not in the HTML either
            assert f"== {other.upper()} ==" not in mail.text
            assert f"· {other} ·" not in mail.html
    assert mails[emails[0]].subject == f"{CHIPMAKER} + 3 more"
    assert mails[emails[2]].subject == f"{POST_TRAINING} + 2 more"
    assert mails[emails[4]].subject == f"{INTERCONNECTION} + 1 more"

    rows = _by_reader(store)
    assert rows[emails[5]]["status"] == "skipped"
    assert rows[emails[5]]["reason"] == (
        "none of this week's sections (AI, Markets, Energy) is among the reader's choices"
    )
    day = datetime.fromtimestamp(now + 14 * DAY, settings.timezone)
    assert rows[emails[6]] == {
        "status": "skipped",
        "reason": f"paused until {day:%b} {day.day}, {day.year}",
        "variant": None,
    }
    # skipped readers do not keep the dispatch partly sent
    assert report.ok and report.status == "sent" and report.skipped == 2
    assert store.dispatches.get(str(WEEK))["status"] == "sent"
    # the same variant row for the same choices; the full copy is the dispatch's own
    assert rows[emails[0]]["variant"] == rows[emails[1]]["variant"]
    assert rows[emails[2]]["variant"] == rows[emails[3]]["variant"]
    variants = {v.id: v for v in store.variants.of(store.dispatches.get(str(WEEK))["id"])}
    assert len(variants) == 4
    full = variants[rows[emails[0]]["variant"]]
    assert full.is_full and full.html == store.dispatches.get(str(WEEK))["html"]
    assert report.variants == {
        SECTIONS: 2,
        ("AI", "Energy"): 2,
        ("Energy",): 1,
        ("AI", "Markets"): 1,
    }


def test_the_archive_copy_is_the_full_dispatch_when_no_reader_gets_everything(
    store: Store, settings: Settings, compiles: list[int]
) -> None:
    ready_week(store, settings)
    for address in add_subscribers(store, 3):
        choose(store, address, off=("Markets",))
    send_dispatch(store, settings, FileSender(settings.outbox), WEEK)
    assert len(compiles) == 2  # the dispatch's own copy (the archive's), and AI + Energy
    frozen = store.dispatches.get(str(WEEK))["html"]
    assert CHIPMAKER in frozen  # the Markets lead is in the archive copy
    mails = outbox_mails(settings.outbox / str(WEEK))
    assert {m.sections for m in mails} == {("AI", "Energy")}
    assert all(CHIPMAKER not in m.html for m in mails)


def test_an_editors_subject_is_kept_in_every_variant(store: Store, settings: Settings) -> None:
    ready_week(store, settings, approved=False)
    edit_text(store, settings, WEEK, subject="The week in systems")
    approve(store, settings, WEEK)
    emails = add_subscribers(store, 2)
    choose(store, emails[1], off=("Markets",))
    send_dispatch(store, settings, FileSender(settings.outbox), WEEK)
    mails = {m.to: m for m in outbox_mails(settings.outbox / str(WEEK))}
    assert {m.subject for m in mails.values()} == {"The week in systems"}
    assert mails[emails[1]].lead == POST_TRAINING  # the lead still follows the variant


def test_a_paused_reader_resumes_by_themselves_the_week_the_pause_ends(
    store: Store, settings: Settings
) -> None:
    """Week 24 is sent while the reader is paused; the next week's dispatch, sent after the
    pause has ended (the clock injected), reaches them with no one touching anything."""
    ready_week(store, settings)
    emails = add_subscribers(store, 2)
    sent_at = datetime(2026, 6, 14, 9, tzinfo=UTC).timestamp()
    choose(store, emails[1], paused_until=sent_at + 10 * DAY)
    sender = FileSender(settings.outbox)
    send_dispatch(store, settings, sender, WEEK, now=lambda: sent_at)
    assert _by_reader(store)[emails[1]]["status"] == "skipped"
    # a rerun the next day changes nothing for the paused reader: skipped is final for a week
    send_dispatch(store, settings, sender, WEEK, now=lambda: sent_at + DAY, retry_failed=True)
    assert {m.to for m in outbox_mails(settings.outbox / str(WEEK))} == {emails[0]}

    next_week = _next_week(store, settings)
    later = sent_at + 14 * DAY  # the pause ended on day 10
    report = send_dispatch(store, settings, sender, next_week, now=lambda: later)
    assert report.sent == 2 and report.skipped == 0
    assert {m.to for m in outbox_mails(settings.outbox / str(next_week))} == set(emails)


def _next_week(store: Store, settings: Settings) -> Week:
    """Week 25: one new AI signal, built and approved."""
    week = Week(2026, 25)
    store.signals.create(
        {
            "title": "Open weights model tops the leaderboard",
            "url": "https://example.org/open-weights",
            "link": "https://example.org/open-weights",
            "published": datetime(2026, 6, 16, tzinfo=UTC),
            "category": "AI",
            "signal_score": 70,
            "why_now": "It shipped this week.",
            "summary_text": "A summary.",
            "summary_html": "<p>A summary.</p>",
        }
    )
    build_dispatch(store, settings, week)
    approve(store, settings, week)
    return week


def test_a_row_keeps_the_variant_of_its_first_claim(store: Store, settings: Settings) -> None:
    """A reader who changes their sections after their delivery was claimed (a temporary
    failure, a kill) is sent the variant of that claim when it is retried."""
    from newsletter.errors import TemporarySendError

    ready_week(store, settings)
    (address,) = add_subscribers(store, 1)
    choose(store, address, off=("Markets",))

    class FailOnce(FileSender):
        failed = False

        def send(self, messages):
            if not FailOnce.failed:
                FailOnce.failed = True
                from newsletter.delivery.senders.base import SendResult

                return [SendResult(m, error=TemporarySendError("451 try later")) for m in messages]
            return super().send(messages)

    first = send_dispatch(store, settings.replace(retry_limit=1), FailOnce(settings.outbox), WEEK)
    assert first.status == "partly sent"
    variant = _by_reader(store)[address]["variant"]
    assert variant is not None
    choose(store, address, off=("AI", "Energy"))  # now Markets only
    again = send_dispatch(store, settings, FailOnce(settings.outbox), WEEK, retry_failed=True)
    assert again.status == "sent"
    (mail,) = outbox_mails(settings.outbox / str(WEEK))
    assert mail.sections == ("AI", "Energy") and _by_reader(store)[address]["variant"] == variant


def test_readers_links_are_signed_for_them(store: Store, settings: Settings) -> None:
    """Each message's unsubscribe link carries its reader's own token (their nonce)."""
    ready_week(store, settings)
    emails = add_subscribers(store, 2)
    choose(store, emails[1], off=("AI",))
    send_dispatch(store, settings, FileSender(settings.outbox), WEEK)
    secret = store.secret_key(settings.secret_key)
    for mail in outbox_mails(settings.outbox / str(WEEK)):
        row = store.subscribers.get_by_email(mail.to)
        assert mail.unsubscribe_works_for(secret, row["id"], row["token_nonce"])


def test_variant_keys_and_dispatches(store: Store, settings: Settings) -> None:
    ready_week(store, settings)
    dispatch = load_dispatch(store, settings, WEEK)
    assert reader_key(SECTIONS, frozenset()) == SECTIONS
    assert reader_key(SECTIONS, frozenset({"Crypto", "AI"})) == ("Energy", "Markets")
    assert reader_key(SECTIONS, frozenset(SECTIONS)) == ()
    assert parse_sections("energy, AI", SECTIONS) == ("AI", "Energy")
    with pytest.raises(DispatchError, match=r"no section 'Crypto' this week \(there are: AI"):
        parse_sections("AI,Crypto", SECTIONS)
    with pytest.raises(DispatchError, match="name at least one section"):
        parse_sections(" , ", SECTIONS)
    shown = variant_dispatch(
        dispatch,
        ("Energy",),
        order=settings.sections,
        name="x",
        subject_set=False,
        preheader_set=False,
    )
    assert [s.title for s in shown.sections] == ["Lead story", "Energy"]
    assert shown.sections[0].signals[0].title == INTERCONNECTION
    assert shown.html is None and shown.id == dispatch.id
    assert (
        variant_dispatch(
            dispatch,
            SECTIONS,
            order=settings.sections,
            name="x",
            subject_set=False,
            preheader_set=False,
        )
        is dispatch
    )


def test_mail_helper_reads_a_variant(store: Store, settings: Settings) -> None:
    """The parser the tests lean on sees what a reader sees (guards against a vacuous pass)."""
    ready_week(store, settings)
    add_subscribers(store, 1)
    send_dispatch(store, settings, FileSender(settings.outbox), WEEK)
    (mail,) = outbox_mails(settings.outbox / str(WEEK))
    assert isinstance(mail, Mail) and mail.cards == 4 and mail.sections == SECTIONS


def test_a_dispatch_frozen_before_variants_resumes_from_its_own_copy(
    store: Store, settings: Settings, compiles: list[int]
) -> None:
    """A dispatch part-sent by a version before variants (no variant rows, deliveries without
    one) resumes from its frozen copy: nothing is compiled again, and the rows it had claimed
    are looked up as the messages they were."""
    ready_week(store, settings)
    emails = add_subscribers(store, 4)
    sender = FileSender(settings.outbox)
    first = send_dispatch(store, settings, sender, WEEK, limit=2)
    assert first.sent == 2 and first.status == "partly sent"
    dispatch_id = store.dispatches.get(str(WEEK))["id"]
    with store.transaction():  # as the older version left it
        store.db.execute("UPDATE deliveries SET variant_id = NULL")
        store.db.execute("DELETE FROM dispatch_variants")
        store.db.execute(
            "UPDATE deliveries SET status = 'unknown' WHERE id ="
            " (SELECT min(id) FROM deliveries WHERE status = 'sent')"
        )
    compiles.clear()
    again = send_dispatch(store, settings, sender, WEEK)
    assert compiles == [] and again.status == "sent"
    assert again.resolution.accepted == 1  # the file is in the outbox: found, not re-sent
    (full,) = store.variants.of(dispatch_id)
    assert full.is_full and full.html == store.dispatches.get(str(WEEK))["html"]
    assert sorted(m.to for m in outbox_mails(settings.outbox / str(WEEK))) == emails


def test_the_one_click_unsubscribe_of_a_sent_variant_unsubscribes_its_reader(
    store: Store, settings: Settings
) -> None:
    """The List-Unsubscribe URL a reader's .eml carries, posted as a mail client does
    (RFC 8058), unsubscribes that reader: the link is signed with their own nonce."""
    from subscribers.app import create_app

    ready_week(store, settings)
    emails = add_subscribers(store, 2)
    choose(store, emails[0], off=("Energy",))
    send_dispatch(store, settings, FileSender(settings.outbox), WEEK)
    client = create_app(settings).test_client()
    for mail in outbox_mails(settings.outbox / str(WEEK)):
        header = str(mail.message["List-Unsubscribe"])
        url = header.split("<", 1)[1].split(">", 1)[0]
        path = url.removeprefix(settings.public_url)
        answer = client.post(
            path,
            data=b"List-Unsubscribe=One-Click",
            content_type="application/x-www-form-urlencoded",
        )
        assert answer.status_code == 200, mail.to
        assert store.subscribers.get_by_email(mail.to)["status"] == "unsubscribed"


def test_every_variants_tracked_links_are_kept_at_the_freeze(
    store: Store, settings: Settings
) -> None:
    """Per-reader click counting: each variant's links lead somewhere (stored, frozen, counted)
    and carry the reader's own part; the same link has the same key in every variant."""
    from newsletter.engagement.links import reader_part

    per_reader = settings.replace(tracking="per-reader")
    ready_week(store, per_reader)
    emails = add_subscribers(store, 3)
    choose(store, emails[1], off=("Markets",))
    choose(store, emails[2], off=("AI", "Markets"))
    send_dispatch(store, per_reader, FileSender(settings.outbox), WEEK)
    dispatch_id = store.dispatches.get(str(WEEK))["id"]
    secret = store.secret_key(settings.secret_key)
    keys_by_reader = {}
    for mail in outbox_mails(settings.outbox / str(WEEK)):
        reader = store.subscribers.get_by_email(mail.to)["id"]
        tokens = re.findall(r'href="[^"]*/r/([A-Za-z0-9_.-]+)"', mail.html)
        assert tokens and all(t.endswith(reader_part(secret, dispatch_id, reader)) for t in tokens)
        keys = {t.split(".")[0] for t in tokens}
        for key in keys:
            stored = store.clicks.link(key)
            assert stored is not None and stored["frozen"] == 1, (mail.to, key)
        keys_by_reader[mail.to] = keys
    # the Energy-only reader's links are a subset of the full dispatch's: the same keys
    assert keys_by_reader[emails[2]] < keys_by_reader[emails[0]]
