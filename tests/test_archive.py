"""The web archive: index newest first by the week each dispatch covers, a page per sent
dispatch without per-reader links and with a way back, and an RSS 2.0 feed that feedparser
reads back and whose HTML is inert."""

from __future__ import annotations

from datetime import UTC, datetime
from html import unescape
from pathlib import Path

import feedparser
import pytest
from hostile import executable

from newsletter.delivery.deliver import send_dispatch
from newsletter.delivery.senders import MemorySender
from newsletter.demo import load_sample
from newsletter.dispatch.archive import archive_page, archived_issues
from newsletter.dispatch.build import approve, build_dispatch, edit_text
from newsletter.errors import NewsletterError
from newsletter.readers.subscriptions import add_subscriber
from newsletter.settings import Settings
from newsletter.site.build import build_site
from newsletter.store import Store
from newsletter.weeks import Week


def build_archive(store: Store, settings: Settings, folder: Path) -> tuple[Path, int]:
    report = build_site(store, settings, folder)
    return report.folder, report.issues


SAMPLE = Path(__file__).parent.parent / "newsletter" / "sample"


@pytest.fixture
def sent(store: Store, settings: Settings) -> Store:
    """Two sent dispatches (W24, then W25 holding one signal moved there) and a W26 draft."""
    load_sample(store, now=datetime(2026, 6, 14, tzinfo=UTC))
    add_subscriber(store, "reader@example.org", name="Ada", confirmed=True)
    moved = next(s for s in store.signals.list() if "battery" in s.title)
    store.db.execute(
        "UPDATE signals SET published = ? WHERE id = ?", ["2026-06-16T09:00:00+00:00", moved.id]
    )
    for week, subject in ((Week(2026, 24), "First <issue> & more"), (Week(2026, 25), None)):
        build_dispatch(store, settings, week)
        if subject:
            edit_text(store, settings, week, subject=subject)
        approve(store, settings, week)
        send_dispatch(store, settings, MemorySender(), week)
    store.db.execute(
        "UPDATE signals SET published = ? WHERE id = ?", ["2026-06-23T09:00:00+00:00", moved.id]
    )
    return store


def test_static_archive(sent: Store, settings: Settings, tmp_path: Path) -> None:
    folder, count = build_archive(sent, settings, tmp_path / "site")
    assert count == 2
    index = (folder / "index.html").read_text(encoding="utf-8")
    # newest first, subjects escaped, relative links that work wherever the folder is served
    assert index.index('href="2026-W25/"') < index.index('href="2026-W24/"')
    assert "First &lt;issue&gt; &amp; more" in index
    assert '<meta name="viewport"' in index
    # each issue by the week it covers, not the day it happened to be sent
    assert "Issue 1 · Week of Jun 8, 2026 (2026-W24)" in index
    assert f"{datetime.now(UTC):%b} {datetime.now(UTC).day}, " not in index
    assert 'href="signals/"' in index and 'href="site.css"' in index
    page = (folder / "2026-W24" / "index.html").read_text(encoding="utf-8")
    assert "Chipmaker guides capex" in page
    assert "/unsubscribe/" not in page and "reader@example.org" not in page
    assert "Hello Ada" not in page
    assert f'href="{settings.public_url}/"' in page and ">Subscribe</a>" in page
    assert "@@" not in page
    # a way back to the index and the stream; "View in browser" is hidden in the browser
    assert '<a href="../">← All issues</a>' in page and '<a href="../signals/">' in page
    assert ".inbox-only { display: none !important; }" in page
    assert page.count('class="inbox-only"') == 1 and 'inbox-only"' in page.split("View in")[0]


def test_feed_is_valid_rss_and_its_html_is_inert(
    sent: Store, settings: Settings, tmp_path: Path
) -> None:
    folder, _ = build_archive(sent, settings, tmp_path / "site")
    feed = feedparser.parse((folder / "feed.xml").read_bytes())
    assert not feed.bozo, feed.get("bozo_exception")
    assert feed.version == "rss20"
    assert feed.feed.title == settings.name
    entries = feed.entries
    assert [e.link for e in entries] == [
        f"{settings.public_url}/archive/2026-W25/",
        f"{settings.public_url}/archive/2026-W24/",
    ]
    # readers render the title as HTML: it arrives escaped, and reads as the subject
    assert entries[1].title_detail.type == "text/html"
    assert unescape(entries[1].title) == "Issue 1: First <issue> & more"
    assert executable(entries[1].title) == []
    assert entries[0].published_parsed is not None
    assert entries[0].id == entries[0].link
    # the description lists the titles as a list, not run together
    description = entries[1].description
    assert "<li>Post-training is (Massive) Supervised Learning</li>" in description
    assert "…·" not in description and "</li><li>" in description


def test_only_sent_dispatches_are_archived(sent: Store, settings: Settings, tmp_path: Path) -> None:
    build_dispatch(sent, settings, Week(2026, 26))  # a draft: not public
    assert [i.dispatch.week for i in archived_issues(sent, settings)] == ["2026-W25", "2026-W24"]
    folder, _ = build_archive(sent, settings, tmp_path / "site")
    assert not (folder / "2026-W26").exists()
    assert "2026-W26" not in (folder / "index.html").read_text(encoding="utf-8")


def test_archive_page_answers_known_paths_only(sent: Store, settings: Settings) -> None:
    for path in ("2026-W24/", "2026-W24/index.html", "/2026-W25/", "feed.xml"):
        assert archive_page(sent, settings, path) is not None, path
    feed = archive_page(sent, settings, "feed.xml")
    assert feed is not None and feed.content_type.startswith("application/rss+xml")
    for path in ("../newsletter.db", "2026-W24/../../etc/passwd", "2026-W99/", "x.html", ""):
        assert archive_page(sent, settings, path) is None, path


def test_the_archive_is_what_was_sent(sent: Store, settings: Settings) -> None:
    """Edits to a signal after sending never change the archived issue."""
    before = next(i.html for i in archived_issues(sent, settings) if i.path == "2026-W24/")
    chip = next(s for s in sent.signals.list() if "Chipmaker" in s.title)
    sent.db.execute("UPDATE signals SET title = 'Rewritten later' WHERE id = ?", [chip.id])
    after = next(i.html for i in archived_issues(sent, settings) if i.path == "2026-W24/")
    assert before == after


def test_rebuild_replaces_an_archive_but_never_another_folder(
    sent: Store, settings: Settings, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    build_archive(sent, settings, site)
    (site / "stale.html").write_text("old", encoding="utf-8")
    build_archive(sent, settings, site)
    assert not (site / "stale.html").exists()
    precious = tmp_path / "documents"
    precious.mkdir()
    (precious / "thesis.txt").write_text("years of work", encoding="utf-8")
    with pytest.raises(NewsletterError, match="not a web archive"):
        build_archive(sent, settings, precious)
    assert (precious / "thesis.txt").read_text(encoding="utf-8") == "years of work"


def test_cli_archive_build(run, tmp_path: Path) -> None:
    result = run("archive", "build", "--output", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert "(0 issues, 0 signal pages" in result.output
    assert "No issues have been sent yet" in (tmp_path / "out" / "index.html").read_text()
    assert not feedparser.parse(str(tmp_path / "out" / "feed.xml")).bozo
