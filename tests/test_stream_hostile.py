"""Hostile text from a feed (the XSS corpus) and in the editor's fields, all the way to the
public site: every page, OpenGraph tag, JSON-LD block, feed and the sitemap stays inert, in
the static build and served by the web service."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import feedparser
import pytest
from hostile import PAGE_TAGS, corpus, hostile_annotations, hostile_feed, parse, settings_in

from newsletter.delivery.deliver import send_dispatch
from newsletter.delivery.senders import MemorySender
from newsletter.dispatch.build import approve, build_dispatch
from newsletter.models import Signal
from newsletter.readers.subscriptions import add_subscriber
from newsletter.settings import Settings
from newsletter.signals.annotations import import_annotations
from newsletter.signals.collect import collect
from newsletter.site.build import build_site
from newsletter.store import Store
from newsletter.weeks import Week
from subscribers import create_app

WEEK = Week(2026, 24)
ATOM = "{http://www.w3.org/2005/Atom}"


@dataclass
class Hostile:
    store: Store
    settings: Settings
    signals: list[Signal]
    folder: Path


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hostile]:
    tmp = tmp_path_factory.mktemp("hostile")
    settings = settings_in(tmp, NEWSLETTER_MAX_SIGNALS="100")
    store = Store.open(settings.db)
    feed = hostile_feed(tmp / "hostile.rss")
    store.sources.add("hostile", str(feed), category="<b>AI</b>", label="Evil <i>& Co")
    collect(store, now=datetime(2026, 6, 14, tzinfo=UTC))
    urls = [s.url for s in store.signals.list()]
    assert len(urls) == len(corpus())
    import_annotations(store, [hostile_annotations(tmp / "reads.jsonl", urls)])
    add_subscriber(store, "reader@example.org", confirmed=True)
    build_dispatch(store, settings, WEEK)
    approve(store, settings, WEEK)
    send_dispatch(store, settings, MemorySender(), WEEK)
    signals = store.stream.all()
    assert len(signals) == len(urls), "every hostile signal went out and is public"
    folder = build_site(store, settings, tmp / "site").folder
    yield Hostile(store, settings, signals, folder)
    store.close()


class Meta(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        key = values.get("property") or values.get("name")
        if tag == "meta" and key:
            self.tags[key] = values.get("content") or ""


def assert_inert_page(html: str, where: str, extra: set[str] = frozenset()) -> None:  # type: ignore[assignment]
    found = parse(html, PAGE_TAGS | extra)
    assert found.found == [], (where, found.found[:5])
    # our own markup only: one subscribe form, one JSON-LD block at most, no extra fields
    assert found.counts["form"] <= 1 and found.counts["button"] <= 1, where
    assert found.counts["script"] <= 1 and found.counts["input"] <= 4, where


def test_every_static_page_is_inert(hostile: Hostile) -> None:
    pages = sorted(hostile.folder.rglob("*.html"))
    assert len(pages) > len(hostile.signals)
    for path in pages:
        where = str(path.relative_to(hostile.folder))
        html = path.read_text(encoding="utf-8")
        if where.startswith("2026-W"):  # the frozen email: MJML's own <style> and <meta>
            found = parse(html, {"style", "meta"})
            assert found.found == [], (where, found.found[:5])
            assert found.counts["script"] == 0
        else:
            assert_inert_page(html, where)


def test_opengraph_and_json_ld_carry_the_text_exactly(hostile: Hostile) -> None:
    for signal in hostile.signals:
        html = (hostile.folder / "signals" / str(signal.slug) / "index.html").read_text()
        meta = Meta()
        meta.feed(html)
        assert meta.tags["og:title"] == signal.title  # the whole text, inside its attribute
        assert meta.tags["twitter:title"] == signal.title
        block = html.split('<script type="application/ld+json">', 1)[1].split("</script>", 1)[0]
        assert "<" not in block and ">" not in block
        data = json.loads(block)
        assert data["name"] == signal.title
        assert data["isBasedOn"]["url"] == signal.url


def _html_texts_of_rss(xml: bytes) -> list[str]:
    root = ET.fromstring(xml)  # noqa: S314 - our own output
    return [e.text or "" for e in root.iter() if e.tag in ("title", "description")]


def test_dispatch_rss_is_inert_when_a_reader_renders_it(hostile: Hostile) -> None:
    xml = (hostile.folder / "feed.xml").read_bytes()
    feed = feedparser.parse(xml)
    assert not feed.bozo, feed.get("bozo_exception")
    texts = _html_texts_of_rss(xml)
    assert any("onerror" in t for t in texts), "the attack text should be there, as text"
    for text in texts:
        assert parse(text).found == [], text[:200]


def test_stream_atom_is_inert_when_a_reader_renders_it(hostile: Hostile) -> None:
    xml = (hostile.folder / "signals" / "feed.xml").read_bytes()
    assert not feedparser.parse(xml).bozo
    root = ET.fromstring(xml)  # noqa: S314 - our own output
    texts = [
        e.text or ""
        for e in root.iter()
        if e.tag in (f"{ATOM}title", f"{ATOM}summary", f"{ATOM}content")
    ]
    assert len(texts) > 3 * len(hostile.signals)
    for text in texts:
        assert parse(text).found == [], text[:200]


def test_json_feed_is_inert(hostile: Hostile) -> None:
    feed = json.loads((hostile.folder / "signals" / "feed.json").read_bytes())
    titles = {s.title for s in hostile.signals}
    for item in feed["items"]:
        assert parse(item["content_html"]).found == [], item["content_html"][:200]
        assert item["title"] in titles  # plain text, as JSON Feed defines it


def test_sitemap_is_well_formed_and_lists_our_urls_only(hostile: Hostile) -> None:
    root = ET.fromstring((hostile.folder / "sitemap.xml").read_bytes())  # noqa: S314
    locs = [e.text or "" for e in root.iter() if e.tag.endswith("loc")]
    assert len(locs) == len(hostile.signals) + 3
    assert all(loc.startswith(hostile.settings.public_url + "/") for loc in locs)


def test_served_pages_and_feeds_are_inert(hostile: Hostile) -> None:
    client = create_app(hostile.settings).test_client()
    paths = ["/signals/", "/signals/page/2/", "/signals/week/2026-W24/"]
    paths += [f"/signals/{s.slug}/" for s in hostile.signals]
    for path in paths:
        answer = client.get(path)
        assert answer.status_code == 200, path
        assert "script-src" not in answer.headers["Content-Security-Policy"]
        assert_inert_page(answer.get_data(as_text=True), path)
    for path in ("/signals/feed.xml",):
        for text in _html_texts_of_rss(client.get(path).data):
            assert parse(text).found == []
    for item in client.get("/signals/feed.json").get_json()["items"]:
        assert parse(item["content_html"]).found == []
    assert client.get("/sitemap.xml").status_code == 200
