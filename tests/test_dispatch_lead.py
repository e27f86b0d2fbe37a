"""The email as an editor found it wanting: the lead first, long abstracts cut, in every copy."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime, timedelta

import pytest

from newsletter.delivery.deliver import send_dispatch
from newsletter.delivery.senders import FileSender
from newsletter.dispatch.archive import archive_page
from newsletter.dispatch.build import approve, build_dispatch
from newsletter.preview import preview_message
from newsletter.readers.subscriptions import add_subscriber
from newsletter.settings import Settings
from newsletter.store import Store
from newsletter.weeks import Week

WEEK = Week(2026, 24)
LONG = " ".join(f"word{i:03d}" for i in range(200))  # 1,599 characters


def _signal(store: Store, n: int, score: int | None, category: str, summary: str = "") -> int:
    return store.signals.create(
        {
            "title": f"Signal {n} in {category}",
            "url": f"https://example.org/{n}",
            "link": f"https://example.org/{n}",
            "published": datetime(2026, 6, 9, tzinfo=UTC) + timedelta(hours=n),
            "category": category,
            "summary_text": summary or f"Summary {n}.",
            "summary_html": f"<p>{summary or f'Summary {n}.'}</p>",
            **({"signal_score": score} if score is not None else {}),
        }
    )


@pytest.fixture
def week(store: Store) -> Store:
    _signal(store, 1, 70, "AI")
    _signal(store, 2, 60, "AI")
    _signal(store, 3, 90, "Science", LONG)  # the lead, in the last configured section
    _signal(store, 4, 65, "Markets")
    _signal(store, 5, None, "AI")  # unscored: not selected
    return store


def test_lead_first_then_sections_and_the_long_abstract_cut(
    week: Store, settings: Settings
) -> None:
    dispatch = build_dispatch(week, settings, WEEK)
    assert [s.title for s in dispatch.signals] == [
        "Signal 3 in Science", "Signal 1 in AI", "Signal 2 in AI", "Signal 4 in Markets"
    ]  # fmt: skip
    html, text = preview_message(week, settings, WEEK)
    order = [html.index(f'">Signal {n} in') for n in (3, 1, 2, 4)]  # the cards' headings
    assert order == sorted(order), "the lead opens the HTML, the sections follow"
    assert "Signal 5 in AI" not in html
    assert (
        text.index("== LEAD STORY ==") < text.index("Signal 3 in Science") < text.index("== AI ==")
    )
    # NEWSLETTER_SUMMARY_LENGTH (560) by default, cut at a word with "…"; the store keeps it all
    assert "word069…" in html and "word070" not in html
    assert "word069…" in " ".join(text.split()) and "word070" not in text
    assert week.signals.get(3).summary_text == LONG  # type: ignore[union-attr]


def test_the_sent_copy_and_archive_keep_the_order_and_the_cut(
    week: Store, settings: Settings
) -> None:
    add_subscriber(week, "reader@example.org", confirmed=True)
    build_dispatch(week, settings.replace(summary_length=120), WEEK)
    approve(week, settings, WEEK)
    send_dispatch(week, settings.replace(summary_length=120), FileSender(settings.outbox), WEEK)
    (eml,) = (settings.outbox / str(WEEK)).glob("*.eml")
    message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    parts = [p.get_content() for p in message.walk() if p.get_content_maintype() == "text"]
    assert len(parts) == 2
    for part in parts:
        assert "word014…" in " ".join(part.split()) and "word015" not in part
    page = archive_page(week, settings, f"{WEEK}/")
    assert page is not None
    archived = page.body.decode()
    assert archived.index("Signal 3 in") < archived.index("Signal 1 in")
    assert "word014…" in archived and "word015" not in archived
