"""Turn feed bytes into FeedItems: pure, no network, no database."""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urljoin

import feedparser

from newsletter.errors import FeedError
from newsletter.models import FeedItem
from newsletter.signals.canonical import arxiv_id_of, bare_arxiv_id, canonical_url
from newsletter.signals.sanitise import html_to_text, plain, sanitise_html, text_to_html
from newsletter.signals.tex import detex, detex_html

__all__ = ["ParsedFeed", "arxiv_id_of", "canonical_url", "looks_like_html", "parse_feed"]

# Current arXiv RSS/Atom: "arXiv:2606.07527v1 Announce Type: cross \nAbstract: ..."
_ARXIV_PREFIX = re.compile(
    r"^\s*arXiv:(?P<id>\S+?)\s+Announce Type:\s*(?P<type>[\w-]+)\s*(?:Abstract:\s*)?",
    re.IGNORECASE,
)
# The older RDF feed put it in the title: "Title. (arXiv:2103.03223v3 [cs.LG] UPDATED)"
_ARXIV_TITLE = re.compile(
    r"\s*\(arXiv:(?P<id>\S+?)\s*\[[^\]]*\](?:\s*(?P<flag>UPDATED|CROSS LISTED))?\)\s*$",
    re.IGNORECASE,
)
_LEGACY_TYPES = {None: "new", "UPDATED": "replace", "CROSS LISTED": "cross"}
ANNOUNCE_TYPES = ("new", "cross", "replace", "replace-cross")

_HTML_START = re.compile(
    rb"^\s*(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html)\b", re.I | re.S
)
_FEED_LINK = re.compile(
    rb"<link[^>]+type=[\"']application/(?:rss|atom)\+xml[\"'][^>]*>", re.IGNORECASE
)
_HREF = re.compile(rb"href=[\"']([^\"']+)[\"']", re.IGNORECASE)


@dataclass(frozen=True)
class ParsedFeed:
    title: str
    items: list[FeedItem]
    warnings: list[str] = field(default_factory=list)


def looks_like_html(body: bytes) -> bool:
    """A web page served where a feed was expected (a moved blog, a login wall, an error page)."""
    return bool(_HTML_START.match(body[:4096]))


def _html_page_error(name: str, body: bytes, base_url: str | None) -> FeedError:
    link = _FEED_LINK.search(body[:65536])
    href = _HREF.search(link.group(0)) if link else None
    hint = ""
    if href:
        target = href.group(1).decode("utf-8", "replace")
        hint = f"; the page links to a feed at {urljoin(base_url or '', target)}"
    return FeedError(f"{name}: an HTML page, not an RSS or Atom feed{hint}")


def _published(entry: feedparser.FeedParserDict) -> datetime | None:
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        value = entry.get(key)
        if value:
            try:
                return datetime.fromtimestamp(calendar.timegm(value), tz=UTC)
            except (OverflowError, ValueError, OSError):
                continue
    return None


def _summary(entry: feedparser.FeedParserDict) -> str:
    """The item's own summary; the full content only when there is none (a brief, not a copy)."""
    summary = entry.get("summary") or entry.get("description")
    if summary:
        return str(summary)
    for content in entry.get("content") or []:
        if content.get("value"):
            return str(content["value"])
    return ""


def _reason(exc: object) -> str:
    text = " ".join(str(exc or "ill-formed feed").split())
    return text[:200]


def _arxiv(
    title: str, raw: str, entry: feedparser.FeedParserDict
) -> tuple[str, str, str | None, str | None]:
    """Title and summary without arXiv's announcement prefix, plus the id and announce type."""
    announce = str(entry.get("arxiv_announce_type") or "").strip().lower() or None
    arxiv_id = None
    legacy = _ARXIV_TITLE.search(title)
    if legacy:
        title = title[: legacy.start()].rstrip().removesuffix(".")
        arxiv_id = bare_arxiv_id(legacy["id"])
        flag = (legacy["flag"] or "").upper() or None
        announce = announce or _LEGACY_TYPES.get(flag, "new")
    if raw and "announce type" in raw[:300].lower():
        text = html_to_text(raw)
        prefix = _ARXIV_PREFIX.match(text)
        if prefix:
            arxiv_id = arxiv_id or bare_arxiv_id(prefix["id"])
            announce = announce or prefix["type"].lower()
            raw = text[prefix.end() :]
            return title, text_to_html(raw), arxiv_id, announce
    return title, raw, arxiv_id, announce


def _title_from(summary_text: str) -> str:
    words = summary_text.split()
    title = " ".join(words[:12])
    return title + ("…" if len(words) > 12 else "")


def parse_feed(
    body: bytes,
    *,
    base_url: str | None = None,
    source_label: str | None = None,
    category: str | None = None,
    name: str = "feed",
    content_type: str | None = None,
) -> ParsedFeed:
    """Parse RSS 0.9x/1.0/2.0 and Atom 0.3/1.0; keep what is usable from an ill-formed feed
    and say what was wrong. Raise FeedError when nothing usable is there."""
    if not body.strip():
        raise FeedError(f"{name}: empty response, not a feed")
    headers = {"content-location": base_url or ""}
    if content_type:
        headers["content-type"] = content_type
    # nh3 sanitises every fragment below; feedparser's own (slower) sanitiser would be redundant.
    parsed = feedparser.parse(body, response_headers=headers, sanitize_html=False)
    warnings: list[str] = []
    if not parsed.get("version") and not parsed.entries:
        if looks_like_html(body):
            raise _html_page_error(name, body, base_url)
        exc = parsed.get("bozo_exception")
        useful = parsed.get("bozo") and not isinstance(exc, feedparser.NonXMLContentType)
        reason = f" ({_reason(exc)})" if useful else ""
        raise FeedError(f"{name}: not an RSS or Atom feed{reason}")
    exc = parsed.get("bozo_exception") if parsed.get("bozo") else None
    if isinstance(exc, feedparser.CharacterEncodingOverride):
        warnings.append(f"{name}: {_reason(exc)}")
    elif exc is not None and not isinstance(exc, feedparser.NonXMLContentType):
        warnings.append(
            f"{name}: ill-formed feed, kept {len(parsed.entries)} items ({_reason(exc)})"
        )
    feed_title = plain(str(parsed.feed.get("title", ""))) or name
    label = source_label or feed_title
    items: list[FeedItem] = []
    skipped: dict[str, int] = {}
    for entry in parsed.entries:
        guid = str(entry.get("id") or "").strip() or None
        link = str(entry.get("link") or "").strip()
        if link and base_url:
            link = urljoin(base_url, link)
        if not link.startswith(("http://", "https://")):
            link = guid if guid and guid.startswith(("http://", "https://")) else ""
        if not link:
            skipped["without a link"] = skipped.get("without a link", 0) + 1
            continue
        title, raw, arxiv_id, announce = _arxiv(
            plain(str(entry.get("title", ""))), _summary(entry), entry
        )
        summary_html = sanitise_html(raw, base_url=link)
        arxiv_id = arxiv_id or arxiv_id_of(link, guid)
        if arxiv_id:  # arXiv titles and abstracts are TeX: ``quotes'', $math$, \emph{}
            summary_html, title = detex_html(summary_html), detex(title)
        summary_text = html_to_text(summary_html)
        title = title or _title_from(summary_text)
        if not title:
            skipped["without a title or summary"] = skipped.get("without a title or summary", 0) + 1
            continue
        items.append(
            FeedItem(
                title=title,
                url=canonical_url(link),
                guid=guid,
                link=link,
                published=_published(entry),
                summary_html=summary_html,
                summary_text=summary_text,
                source_label=label,
                category=category,
                arxiv_id=arxiv_id,
                announce_type=announce if announce in ANNOUNCE_TYPES else None,
            )
        )
    for why, count in skipped.items():
        warnings.append(f"{name}: skipped {count} item{'s' * (count != 1)} {why}")
    return ParsedFeed(title=feed_title, items=items, warnings=warnings)
