"""Feed HTML is untrusted: reduce it to a small allow-list before it can reach a template."""

from __future__ import annotations

import html
import re
from urllib.parse import urljoin, urlsplit

import nh3

ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "em", "i", "li", "ol", "p", "pre",
    "strong", "sub", "sup", "ul",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "abbr": {"title"}}
ALLOWED_SCHEMES = {"http", "https", "mailto"}

_BLOCK_END = re.compile(r"</(p|li|blockquote|pre|h[1-6]|div)>|<br\s*/?>", re.IGNORECASE)
_TAG = re.compile(r"<[^>]+>")
_SPACES = re.compile(r"[ \t\r\f\v]+")
_BLANKS = re.compile(r"\n\s*\n+")


def sanitise_html(fragment: str, base_url: str | None = None) -> str:
    """Allow-listed HTML with absolute http(s)/mailto links; scripts, styles and images gone."""
    if not fragment:
        return ""

    def absolutise(tag: str, attribute: str, value: str) -> str | None:
        if tag == "a" and attribute == "href":
            target = urljoin(base_url, value.strip()) if base_url else value.strip()
            return target if urlsplit(target).scheme in ALLOWED_SCHEMES else None
        return value

    return nh3.clean(
        fragment,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=ALLOWED_SCHEMES,
        attribute_filter=absolutise,
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    ).strip()


def html_to_text(fragment: str) -> str:
    """Readable plain text of a sanitised fragment, paragraphs kept, for the text part."""
    if not fragment:
        return ""
    text = _BLOCK_END.sub("\n\n", fragment)
    text = _TAG.sub("", text)
    text = html.unescape(text)
    text = _SPACES.sub(" ", text)
    lines = [line.strip() for line in text.split("\n")]
    return _BLANKS.sub("\n\n", "\n".join(lines)).strip()


def plain(text: str) -> str:
    """Feed titles are text, but often carry entities or stray tags: one clean line."""
    return " ".join(html_to_text(nh3.clean(text or "", tags=set())).split())


def text_to_html(text: str) -> str:
    """The editor's plain text as safe HTML paragraphs."""
    paragraphs = [p.strip() for p in _BLANKS.split(text or "") if p.strip()]
    return "".join(f"<p>{html.escape(' '.join(p.split()))}</p>" for p in paragraphs)


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u202a-\u202e\u2066-\u2069]")


def untrusted_text(text: str) -> str:
    """Text from a stranger (a language model's answer) as plain text: tags and control
    characters removed, entities decoded, paragraphs kept."""
    return html_to_text(nh3.clean(_CONTROL.sub("", text or ""), tags=set()))
