"""arXiv feeds in their three shapes, and the canonical URL that makes one paper one signal."""

from __future__ import annotations

from pathlib import Path

import pytest

from newsletter.errors import FeedError
from newsletter.signals.canonical import arxiv_id_of, canonical_url
from newsletter.signals.parse import parse_feed

FEEDS = Path(__file__).parent / "fixtures" / "feeds"


def test_current_rss_gives_id_type_and_abstract_without_the_prefix() -> None:
    body = (FEEDS / "arxiv" / "rss-arxiv-org_rss_cs.LG_2026-04-27_trimmed3.xml").read_bytes()
    parsed = parse_feed(body, source_label="arXiv cs.LG", category="AI")
    first = parsed.items[0]
    assert first.arxiv_id == "2604.21952"
    assert first.announce_type == "new"
    assert first.url == "https://arxiv.org/abs/2604.21952"
    assert first.summary_text.startswith("This work presents a multi-layered methodology")
    assert "Announce Type" not in first.summary_html and "arXiv:" not in first.summary_text[:20]
    assert first.source_label == "arXiv cs.LG" and first.category == "AI"
    assert (
        first.published is not None and first.published.isoformat() == "2026-04-27T04:00:00+00:00"
    )
    assert not parsed.warnings


def test_current_atom_reads_cross_listings() -> None:
    body = (FEEDS / "arxiv" / "rss-arxiv-org_atom_cs.AI_2025-08-20_trimmed7.xml").read_bytes()
    items = parse_feed(body).items
    assert {i.announce_type for i in items} >= {"cross"}
    assert all(i.arxiv_id and i.url == f"https://arxiv.org/abs/{i.arxiv_id}" for i in items)
    assert all(not i.summary_text.startswith("arXiv:") for i in items)


def test_api_atom_with_versioned_ids() -> None:
    body = (FEEDS / "arxiv" / "export-arxiv-org_api_query_id_2013-02.xml").read_bytes()
    (item,) = parse_feed(body).items
    assert item.arxiv_id == "1301.7746"
    assert item.url == "https://arxiv.org/abs/1301.7746"
    assert item.summary_text.startswith("These lecture notes")


def test_legacy_rdf_feed_reads_the_type_from_the_title() -> None:
    items = parse_feed((FEEDS / "legacy" / "arxiv-rdf-2023.xml").read_bytes()).items
    by_id = {i.arxiv_id: i for i in items}
    assert by_id["2307.04417"].announce_type == "new"
    assert by_id["2307.05001"].announce_type == "cross"
    assert by_id["2306.09301"].announce_type == "replace"
    assert by_id["2306.09301"].title == (
        "OpenOOD v1.5: Enhanced Benchmark for Out-of-Distribution Detection"
    )
    assert "script" not in by_id["2307.05001"].summary_html


def test_replace_announcement_in_the_current_format() -> None:
    body = b"""<rss version="2.0" xmlns:arxiv="http://arxiv.org/schemas/atom"><channel>
    <title>cs.LG</title><item><title>A paper</title>
    <link>https://arxiv.org/abs/2606.07527</link>
    <description>arXiv:2606.07527v3 Announce Type: replace-cross
Abstract: Revised &lt;b&gt;abstract&lt;/b&gt;.</description>
    <guid isPermaLink="false">oai:arXiv.org:2606.07527v3</guid>
    </item></channel></rss>"""
    (item,) = parse_feed(body).items
    assert (item.arxiv_id, item.announce_type) == ("2606.07527", "replace-cross")
    assert item.summary_text == "Revised abstract."


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("https://arxiv.org/abs/2606.07527v2", "https://arxiv.org/abs/2606.07527"),
        ("http://arxiv.org/pdf/2606.07527v1.pdf", "https://arxiv.org/abs/2606.07527"),
        ("https://export.arxiv.org/abs/2606.07527/", "https://arxiv.org/abs/2606.07527"),
        ("https://arxiv.org/html/2606.07527v4", "https://arxiv.org/abs/2606.07527"),
        ("https://www.arxiv.org/abs/hep-th/9901001v2", "https://arxiv.org/abs/hep-th/9901001"),
        ("HTTPS://Example.ORG/Post/?utm_source=x&id=3&fbclid=abc", "https://example.org/Post?id=3"),
        ("https://example.org:443/a/#comments", "https://example.org/a"),
        ("http://example.org:8080/a?b=2&a=1", "http://example.org:8080/a?a=1&b=2"),
        ("https://example.org/", "https://example.org"),
    ],
)
def test_canonical_url(given: str, expected: str) -> None:
    assert canonical_url(given) == expected


def test_canonical_url_keeps_what_identifies_the_page() -> None:
    assert canonical_url("https://example.org/item?id=1") != canonical_url(
        "https://example.org/item?id=2"
    )
    assert canonical_url("https://example.org/Case") != canonical_url("https://example.org/case")


def test_arxiv_id_from_guid_or_url() -> None:
    assert arxiv_id_of(None, "oai:arXiv.org:2508.13426v1") == "2508.13426"
    assert arxiv_id_of("https://arxiv.org/pdf/2508.13426v2", None) == "2508.13426"
    assert arxiv_id_of("https://example.org/abs/2508.13426", "tag:x") is None


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "empty response"),
        (
            b"<!DOCTYPE html><html><head><link rel='alternate' type='application/rss+xml'"
            b" href='/feed.xml'></head><body>Blog</body></html>",
            "an HTML page, not an RSS or Atom feed; the page links to a feed at "
            "https://blog.example.org/feed.xml",
        ),
        (b"<note><to>x</to></note>", "not an RSS or Atom feed"),
    ],
)
def test_what_is_not_a_feed_is_refused_with_the_reason(body: bytes, reason: str) -> None:
    with pytest.raises(FeedError) as caught:
        parse_feed(body, base_url="https://blog.example.org/page", name="blog")
    assert str(caught.value).startswith(f"blog: {reason}")


def test_missing_title_falls_back_to_the_summary_and_missing_link_is_reported() -> None:
    body = b"""<rss version="2.0"><channel><title>t</title>
    <item><link>https://example.org/a</link><description>Words of the summary</description></item>
    <item><title>No link</title><guid isPermaLink="false">x-1</guid></item>
    </channel></rss>"""
    parsed = parse_feed(body, name="odd")
    assert [i.title for i in parsed.items] == ["Words of the summary"]
    assert parsed.warnings == ["odd: skipped 1 item without a link"]
