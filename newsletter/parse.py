"""Turn feed bytes into FeedItems: pure, no network, no database."""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import feedparser

from newsletter.errors import FeedError
from newsletter.models import FeedItem
from newsletter.sanitise import html_to_text, plain, sanitise_html

_ARXIV_PREFIX = re.compile(
    r"^\s*arXiv:(?P<id>[\w.\-/]+?)(?:v\d+)?\s+Announce Type:\s*(?P<type>[\w-]+)\s*Abstract:\s*",
    re.IGNORECASE,
)
_ARXIV_URL = re.compile(
    r"^https?://(?:www\.|export\.)?arxiv\.org/(?:abs|pdf|html)/(?P<id>[\w.\-/]+?)(?:v\d+)?(?:\.pdf)?/?$",
    re.IGNORECASE,
)
_ARXIV_GUID = re.compile(r"^oai:arXiv\.org:(?P<id>[\w.\-/]+?)(?:v\d+)?$", re.IGNORECASE)
_TRACKING = re.compile(r"^(utm_\w+|fbclid|gclid|mc_cid|mc_eid|ref_src|_hsenc|_hsmi)$", re.I)


@dataclass(frozen=True)
class ParsedFeed:
    title: str
    items: list[FeedItem]
    warnings: list[str] = field(default_factory=list)


def canonical_url(url: str) -> str:
    """One spelling per page: lower-case scheme and host, no tracking query, no trailing slash."""
    url = url.strip()
    arxiv = _ARXIV_URL.match(url)
    if arxiv:
        return f"https://arxiv.org/abs/{arxiv['id']}"
    parts = urlsplit(url)
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if not _TRACKING.match(k)])
    path = parts.path.rstrip("/") if parts.path not in ("", "/") else ""
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), path, query, ""))


def arxiv_id_of(url: str | None, guid: str | None) -> str | None:
    for pattern, value in ((_ARXIV_GUID, guid), (_ARXIV_URL, url)):
        match = pattern.match(value or "")
        if match:
            return match["id"]
    return None


def _published(entry: feedparser.FeedParserDict) -> datetime | None:
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        value = entry.get(key)
        if value:
            return datetime.fromtimestamp(calendar.timegm(value), tz=UTC)
    return None


def _summary(entry: feedparser.FeedParserDict) -> str:
    for content in entry.get("content") or []:
        if content.get("value"):
            return content["value"]
    return entry.get("summary") or entry.get("description") or ""


def parse_feed(
    body: bytes,
    *,
    base_url: str | None = None,
    source_label: str | None = None,
    category: str | None = None,
    name: str = "feed",
    content_type: str = "application/xml",
) -> ParsedFeed:
    """Parse RSS/Atom; keep what is usable from ill-formed feeds and say what was wrong."""
    headers = {"content-location": base_url or "", "content-type": content_type}
    parsed = feedparser.parse(body, response_headers=headers)
    warnings: list[str] = []
    if parsed.get("bozo"):
        reason = str(parsed.get("bozo_exception") or "ill-formed feed")
        if not parsed.entries:
            raise FeedError(f"{name}: not a feed ({reason})")
        warnings.append(f"{name}: ill-formed feed, kept {len(parsed.entries)} items ({reason})")
    if not parsed.get("version") and not parsed.entries:
        raise FeedError(f"{name}: not an RSS or Atom feed")
    feed_title = plain(parsed.feed.get("title", "")) or name
    label = source_label or feed_title
    items = []
    for entry in parsed.entries:
        link = entry.get("link") or ""
        if link and base_url:
            link = urljoin(base_url, link)
        guid = entry.get("id") or None
        if not link and guid and guid.startswith(("http://", "https://")):
            link = guid
        title = plain(entry.get("title", ""))
        if not link or not title:
            warnings.append(f"{name}: skipped an item without a {'link' if not link else 'title'}")
            continue
        raw = _summary(entry)
        arxiv_type = entry.get("arxiv_announce_type")
        prefix = _ARXIV_PREFIX.match(html_to_text(raw)) if raw else None
        if prefix:
            arxiv_type = arxiv_type or prefix["type"]
            raw = _ARXIV_PREFIX.sub("", html_to_text(raw), count=1)
        summary_html = sanitise_html(raw, base_url=link or base_url)
        items.append(
            FeedItem(
                title=title,
                url=canonical_url(link),
                guid=guid,
                link=link,
                published=_published(entry),
                summary_html=summary_html,
                summary_text=html_to_text(summary_html),
                source_label=label,
                category=category,
                arxiv_id=arxiv_id_of(link, guid) or (prefix["id"] if prefix else None),
                announce_type=(arxiv_type or "").lower() or None,
            )
        )
    return ParsedFeed(title=feed_title, items=items, warnings=warnings)
