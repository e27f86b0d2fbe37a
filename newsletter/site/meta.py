"""What makes a shared link unfurl: OpenGraph and Twitter card tags, and schema.org JSON-LD.

Tag values are attributes, escaped by the template. JSON-LD sits inside a <script> element,
where HTML escaping does not apply: the JSON is written with `<`, `>` and `&` as \\u escapes,
so no text can close the element (`</script>`) or open a comment (`<!--`).
"""

from __future__ import annotations

import json
from typing import Any

from markupsafe import Markup

from newsletter.dispatch.card import Card
from newsletter.settings import Settings

DESCRIPTION_LIMIT = 300


def description(card: Card) -> str:
    """The card's one line, as a single line of at most DESCRIPTION_LIMIT characters."""
    text = " ".join(card.description.split())
    if len(text) <= DESCRIPTION_LIMIT:
        return text
    return text[: DESCRIPTION_LIMIT - 1].rsplit(" ", 1)[0] + "…"


def tags(card: Card, settings: Settings, canonical: str) -> list[tuple[str, str, str]]:
    """(attribute, name, content) of each <meta>: OpenGraph uses property=, Twitter name=."""
    line = description(card)
    found = [
        ("name", "description", line),
        ("property", "og:type", "article"),
        ("property", "og:site_name", settings.name),
        ("property", "og:title", card.title),
        ("property", "og:description", line),
        ("property", "og:url", canonical),
        ("property", "article:published_time", card.published.isoformat()),
        ("property", "article:section", card.category),
        ("name", "twitter:card", "summary"),
        ("name", "twitter:title", card.title),
        ("name", "twitter:description", line),
    ]
    if settings.logo_url:
        found.append(("property", "og:image", settings.logo_url))
    return [(attr, name, value) for attr, name, value in found if value]


def script_json(data: Any) -> Markup:
    """JSON safe to put inside a <script> element."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    for raw, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(raw, escaped)
    text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return Markup(text)  # noqa: S704 - nothing in it can end the element or start markup


def article(card: Card, settings: Settings, canonical: str, modified: str | None) -> Markup:
    """schema.org Article for the signal page; the primary source is `isBasedOn`."""
    publisher: dict[str, Any] = {"@type": "Organization", "name": settings.name}
    if settings.logo_url:
        publisher["logo"] = {"@type": "ImageObject", "url": settings.logo_url}
    based_on: dict[str, Any] = {"@type": "CreativeWork", "url": card.source_url}
    if card.source:
        based_on["publisher"] = {"@type": "Organization", "name": card.source}
    data: dict[str, Any] = {
        "@context": "https://schema.org",
        "@type": "Article",
        "headline": card.title[:110],
        "name": card.title,
        "description": description(card),
        "url": canonical,
        "mainEntityOfPage": canonical,
        "datePublished": card.published.isoformat(),
        "articleSection": card.category,
        "author": publisher,
        "publisher": publisher,
        "isBasedOn": based_on,
    }
    if modified:
        data["dateModified"] = modified
    return script_json(data)
