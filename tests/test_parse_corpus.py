"""Every real feed of the corpus parses without a crash, yields its items, and every summary
that comes out passes the sanitiser's allow-list."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import feedparser
import pytest

from newsletter.errors import FeedError
from newsletter.models import FeedItem
from newsletter.signals.parse import parse_feed
from newsletter.signals.sanitise import ALLOWED_ATTRIBUTES, ALLOWED_SCHEMES, ALLOWED_TAGS

FEEDS = Path(__file__).parent / "fixtures" / "feeds"
FEED_SUFFIXES = (".xml", ".rss", ".atom")
# feedparser's CDF (Channel Definition Format) tests: not RSS or Atom, refused by design.
REFUSED = {"cdf"}
_SKIPPED = re.compile(r"skipped (\d+) items?")


def _files(folder: str) -> list[Path]:
    return sorted(p for p in (FEEDS / folder).rglob("*") if p.suffix in FEED_SUFFIXES)


class AllowList(HTMLParser):
    """Collects every tag, attribute and link target that is outside the allow-list."""

    def __init__(self) -> None:
        super().__init__()
        self.violations: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ALLOWED_TAGS:
            self.violations.append(f"<{tag}>")
        for name, value in attrs:
            if name == "rel" and tag == "a":
                continue
            if name not in ALLOWED_ATTRIBUTES.get(tag, set()):
                self.violations.append(f"<{tag} {name}>")
            if name == "href" and urlsplit(value or "").scheme not in ALLOWED_SCHEMES:
                self.violations.append(f"href={value!r}")


def assert_clean(item: FeedItem) -> None:
    checker = AllowList()
    checker.feed(item.summary_html)
    checker.close()
    assert checker.violations == [], f"{item.url}: {checker.violations}"
    assert item.title and "\n" not in item.title
    assert item.url.startswith(("http://", "https://"))
    assert item.published is None or item.published.utcoffset() is not None


def test_every_wellformed_feedparser_feed_yields_its_items() -> None:
    files = _files("feedparser/wellformed")
    assert len(files) > 1700
    refused, items = [], 0
    for path in files:
        body = path.read_bytes()
        try:
            parsed = parse_feed(body, base_url="http://example.org/feed.xml", name=path.name)
        except FeedError:
            refused.append(path.parent.name)
            continue
        entries = len(feedparser.parse(body, sanitize_html=False).entries)
        skipped = sum(int(n) for w in parsed.warnings for n in _SKIPPED.findall(w))
        assert len(parsed.items) + skipped == entries, path
        for item in parsed.items:
            assert_clean(item)
        items += len(parsed.items)
    assert set(refused) <= REFUSED, refused
    assert items > 30  # most of feedparser's tests exercise one element, not whole items


@pytest.mark.parametrize(
    "folder", ["feedparser/illformed", "feedparser/encoding", "feedparser/entities", "encoding"]
)
def test_ill_formed_and_oddly_encoded_feeds_never_crash(folder: str) -> None:
    """Bozo feeds keep what is usable and say what was wrong; hopeless ones are a FeedError."""
    files = _files(folder)
    assert files
    for path in files:
        try:
            parsed = parse_feed(path.read_bytes(), base_url="http://example.org/", name=path.name)
        except FeedError as exc:
            assert path.name in str(exc)
            continue
        for item in parsed.items:
            assert_clean(item)


def test_truncated_feed_keeps_complete_items_and_reports_the_defect() -> None:
    body = (FEEDS / "realworld" / "github-releases_python-cpython.atom").read_bytes()
    whole = parse_feed(body, name="cpython")
    cut = parse_feed(body[: len(body) * 2 // 3], name="cpython")
    assert not whole.warnings
    assert 0 < len(cut.items) < len(whole.items)
    assert any("ill-formed" in w for w in cut.warnings)


def test_real_world_feeds_yield_clean_items() -> None:
    for path in _files("realworld"):
        parsed = parse_feed(path.read_bytes(), base_url="https://example.org/", name=path.name)
        assert parsed.items, path
        for item in parsed.items:
            assert_clean(item)
            assert item.published is not None, (path, item.title)


def test_encodings_are_decoded_not_mangled() -> None:
    latin = parse_feed((FEEDS / "encoding" / "miniflux-encoding_iso-8859-1.xml").read_bytes())
    koi8 = parse_feed((FEEDS / "encoding" / "miniflux-encoding_koi8r.xml").read_bytes())
    assert latin.title == "Café"
    text = " ".join(i.title + i.summary_text for i in koi8.items)
    assert "\ufffd" not in text
    assert "Привет мир" in text
