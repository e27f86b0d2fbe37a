"""The Share row: plain links to each network's own share page. No script, no tracker, no
request to anyone until the reader clicks (and then only to the network they chose)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, urlencode


@dataclass(frozen=True)
class ShareLink:
    name: str  # what the link shows: "Bluesky"
    label: str  # what a screen reader says: "Share on Bluesky"
    href: str


def share_links(url: str, title: str) -> tuple[ShareLink, ...]:
    """Email, X, LinkedIn, Bluesky and Mastodon (through Mastodon's own share page, which asks
    for the reader's server and keeps the text in the URL's fragment, never sent to it)."""
    text = f"{title} {url}"
    return (
        ShareLink(
            "Email",
            "Share by email",
            "mailto:?" + urlencode({"subject": title, "body": url}, quote_via=quote),
        ),
        ShareLink(
            "X",
            "Share on X",
            "https://x.com/intent/tweet?" + urlencode({"text": title, "url": url}, quote_via=quote),
        ),
        ShareLink(
            "LinkedIn",
            "Share on LinkedIn",
            "https://www.linkedin.com/sharing/share-offsite/?"
            + urlencode({"url": url}, quote_via=quote),
        ),
        ShareLink(
            "Bluesky",
            "Share on Bluesky",
            "https://bsky.app/intent/compose?" + urlencode({"text": text}, quote_via=quote),
        ),
        ShareLink(
            "Mastodon",
            "Share on Mastodon",
            "https://share.joinmastodon.org/#text=" + quote(text, safe=""),
        ),
    )
