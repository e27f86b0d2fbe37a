"""Each stage of the weekly slice on a small fixture week: collect -> build -> render -> send."""

from __future__ import annotations

import email
from datetime import UTC, datetime
from email import policy
from pathlib import Path

import pytest

from newsletter.delivery.deliver import send_dispatch
from newsletter.delivery.senders import MemorySender
from newsletter.demo import load_sample
from newsletter.dispatch.build import approve, build_dispatch
from newsletter.dispatch.render import render_dispatch
from newsletter.errors import DispatchError
from newsletter.readers.subscriptions import add_subscriber
from newsletter.settings import Settings
from newsletter.signals.collect import collect
from newsletter.store import Store
from newsletter.weeks import Week

SAMPLE = Path(__file__).parent.parent / "newsletter" / "sample"
WEEK = Week(2026, 24)


@pytest.fixture
def loaded(store: Store) -> Store:
    load_sample(store, now=datetime(2026, 6, 14, tzinfo=UTC))
    return store


def test_collect_stores_items_with_arxiv_fields(loaded: Store) -> None:
    row = loaded.signals.find(arxiv_id="2606.07527")
    assert row is not None
    assert row["announce_type"] == "cross"
    assert row["url"] == "https://arxiv.org/abs/2606.07527"
    assert not row["summary_text"].startswith("arXiv:")
    assert row["published"].startswith("2026-06-09")


def test_collect_again_updates_instead_of_duplicating(loaded: Store) -> None:
    before = loaded.signals.count()
    report = collect(loaded)
    assert loaded.signals.count() == before
    assert report.new == 0
    # the editor's read survives the re-fetch
    assert loaded.signals.find(arxiv_id="2606.07527")["signal_score"] == 75


def test_build_orders_by_strength_and_groups_by_section(loaded: Store, settings: Settings) -> None:
    dispatch = build_dispatch(loaded, settings, WEEK)
    # the strongest signal (Markets, 82) leads; unscored signals are not selected
    assert [s.title for s in dispatch.sections] == ["Lead story", "AI", "Energy"]
    assert dispatch.sections[0].signals[0].signal_score == 82
    ai = dispatch.sections[1].signals
    # the seed-002 paper is from May (week 21): not this week's
    assert [s.signal_score for s in ai] == [75]
    assert ai[0].arxiv_id == "2606.07527"
    assert [s.signal_score for s in dispatch.sections[2].signals] == [68, 55]
    # the subject leads with the strongest signal of the week
    assert dispatch.subject.startswith("Chipmaker guides capex")
    assert dispatch.issue_number == 1


def test_render_shows_the_seed_fields_and_hides_missing_ones(
    loaded: Store, settings: Settings
) -> None:
    dispatch = build_dispatch(loaded, settings, WEEK)
    rendered = render_dispatch(dispatch, settings)
    html, text = rendered.personalise(
        {"unsubscribe_url": "https://x.example/u/1", "greeting": "Hello,", "email": "a@b.org"}
    )
    for expected in (
        "Signal 75",
        "Medium term",
        "Source: arXiv cs.LG",
        "Why this matters",
        "Winners",
        "Losers",
        "Second-order effects",
        "Editorial confidence: 90 / 100",
        "Structural impact: 60 / 100",
        "Read at arXiv cs.LG",
        "https://x.example/u/1",
    ):
        assert expected in html, expected
    assert "None" not in html and "None" not in text
    assert "{{" not in html and "@@" not in html and "@@" not in text
    assert '<meta name="viewport"' in html and "@media" in html
    assert "Editorial confidence: 90 / 100" in text


def test_send_needs_approval_then_mails_each_active_subscriber_once(
    loaded: Store, settings: Settings
) -> None:
    for address in ("one@example.org", "two@example.org"):
        add_subscriber(loaded, address, confirmed=True)
    add_subscriber(loaded, "pending@example.org")
    build_dispatch(loaded, settings, WEEK)
    sender = MemorySender()
    with pytest.raises(DispatchError, match="not approved"):
        send_dispatch(loaded, settings, sender, WEEK)
    approve(loaded, settings, WEEK)
    report = send_dispatch(loaded, settings, sender, WEEK)
    assert report.sent == 2 and report.ok
    assert sorted(m.to_addr for m in sender.sent) == ["one@example.org", "two@example.org"]
    again = send_dispatch(loaded, settings, sender, WEEK)
    assert again.already_sent and len(sender.sent) == 2
    parsed = email.message_from_bytes(sender.sent[0].as_bytes(), policy=policy.default)
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    with pytest.raises(DispatchError, match="frozen"):
        build_dispatch(loaded, settings, WEEK)


def test_empty_week_builds_an_empty_draft_that_cannot_be_sent(
    store: Store, settings: Settings
) -> None:
    dispatch = build_dispatch(store, settings, Week(2026, 2))
    assert dispatch.signals == ()
    with pytest.raises(DispatchError, match="no signals"):
        approve(store, settings, Week(2026, 2))
