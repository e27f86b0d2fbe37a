"""Hostile text for the stream's tests: the XSS corpus (mozilla/bleach's regression inputs,
tests/fixtures/feeds/bleach-regression-data) as a real feed and real annotations, and a check
that an HTML document or fragment holds nothing a browser would run."""

from __future__ import annotations

import json
import re
from collections import Counter
from html import escape
from html.parser import HTMLParser
from pathlib import Path

from newsletter.settings import Settings, load_settings

BLEACH = Path(__file__).parent / "fixtures" / "feeds" / "bleach-regression-data"


def settings_in(folder: Path, **extra: str) -> Settings:
    """Settings for a module-wide fixture: everything under `folder`."""
    return load_settings(
        {
            "NEWSLETTER_DB": str(folder / "newsletter.db"),
            "NEWSLETTER_OUTBOX": str(folder / "outbox"),
            "NEWSLETTER_WEB_ARCHIVE_DIR": str(folder / "archive"),
            "NEWSLETTER_SECRET_KEY": "test-secret-key-0123456789",
            **extra,
        },
        env_file=None,
    )


#: attacks on the places text becomes markup: an RSS reader decoding a title, a <script> block
#: (JSON-LD), an attribute (OpenGraph), a comment, a CDATA section
EXTRA = (
    "&lt;img src=x onerror=alert(1)&gt;",
    "<img src=x onerror=alert(1)>",
    "</script><script>alert(1)</script>",
    "<!--<script>alert(1)//-->",
    '" onmouseover="alert(1)" x="',
    "' autofocus onfocus='alert(1)",
    "]]><script>alert(1)</script>",
    "{{ 7*7 }} {% raw %} @@csrf@@",
    "<svg/onload=alert(1)>",
    '<a href="javascript:alert(1)">x</a>',
)


def corpus() -> list[str]:
    cases = sorted(BLEACH.glob("*.test"), key=lambda p: int(p.stem))
    inputs = [p.read_text(encoding="utf-8").split("\n--\n")[0] for p in cases]
    assert len(inputs) > 15, "the XSS corpus is missing"
    return [*inputs, *EXTRA]


def one_line(text: str) -> str:
    return " ".join(text.split())[:300] or "x"


def hostile_feed(path: Path, count: int | None = None) -> Path:
    """An RSS feed whose titles and descriptions are the corpus, as a feed would carry them."""
    items = []
    for i, text in enumerate(corpus()[:count]):
        items.append(
            "<item>"
            f"<title>Case {i}: {escape(one_line(text), quote=False)}</title>"
            f"<link>https://hostile.example/{i}?q=%22%3E%3Cscript%3E</link>"
            f"<guid>hostile-{i}</guid>"
            f"<description>{escape(text, quote=False)}</description>"
            f"<pubDate>Tue, 09 Jun 2026 0{i % 10}:00:00 +0000</pubDate>"
            "</item>"
        )
    path.write_text(
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        "<title>Hostile &lt;b&gt;feed</title><link>https://hostile.example/</link>"
        f"<description>x</description>{''.join(items)}</channel></rss>",
        encoding="utf-8",
    )
    return path


def hostile_annotations(path: Path, urls: list[str]) -> Path:
    """JSON Lines giving each signal an editor's read made of the corpus; every other one gets
    a raw title too (the collector strips tags from feed titles, an editor's title is text)."""
    texts = corpus()
    lines = []
    for i, url in enumerate(urls):
        text = texts[i % len(texts)]
        title = {"title": f"Read {i}: {one_line(text)}"} if i % 2 else {}
        lines.append(
            json.dumps(
                {
                    **title,
                    "url": url,
                    "category": one_line(texts[(i + 1) % len(texts)])[:40],
                    "source": one_line(texts[(i + 2) % len(texts)])[:80],
                    "signal_score": 50 + i % 50,
                    "horizon": "short term",
                    "why_now": text,
                    "why_important": texts[(i + 3) % len(texts)],
                    "what_changes": text,
                    "winners": [one_line(text)[:80]],
                    "losers": [one_line(texts[(i + 4) % len(texts)])[:80]],
                    "effects_direct": text,
                    "effects_second": text,
                    "effects_third": text,
                    "editorial_confidence": 10,
                    "structural_impact": 20,
                }
            )
        )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


_DANGEROUS_TAGS = set(
    [
        "script",
        "iframe",
        "object",
        "embed",
        "img",
        "svg",
        "math",
        "frame",
        "frameset",
        "applet",
        "base",
        "form",
        "input",
        "button",
        "style",
        "link",
        "meta",
        "textarea",
        "select",
        "video",
        "audio",
        "source",
        "noscript",
    ]
)
_URL_ATTRS = {"href", "src", "action", "formaction", "xlink:href", "data", "poster", "srcdoc"}


class Executable(HTMLParser):
    """Collects everything in a document that could run or load: script elements (but
    JSON-LD data blocks, which must parse as JSON), event handlers, javascript:/data: URLs,
    and elements outside `allowed`."""

    def __init__(self, allowed: set[str]) -> None:
        super().__init__(convert_charrefs=True)
        self.allowed = allowed
        self.found: list[str] = []
        self.counts: Counter[str] = Counter()
        self._script: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        self.counts[tag] += 1
        if tag == "script":
            if values.get("type") != "application/ld+json" or "src" in values:
                self.found.append(f"<script {attrs}>")
            self._script = ""
        elif tag in _DANGEROUS_TAGS and tag not in self.allowed:
            self.found.append(f"<{tag} {attrs}>")
        for name, value in attrs:
            if name.startswith("on"):
                self.found.append(f"<{tag} {name}=...>")
            if name in _URL_ATTRS and value:
                scheme = re.sub(r"[\s\x00-\x1f]", "", value).lower()
                if scheme.startswith(("javascript:", "vbscript:", "data:")):
                    self.found.append(f"<{tag} {name}={value!r}>")
            if name == "http-equiv" and (value or "").lower() == "refresh" and tag == "meta":
                content = (values.get("content") or "").lower()
                if "javascript:" in content:
                    self.found.append(f"<meta refresh {content!r}>")

    def handle_data(self, data: str) -> None:
        if self._script is not None:
            self._script += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._script is not None:
            raw = self._script
            self._script = None
            if "</script" in raw.lower() or "<!--" in raw:
                self.found.append(f"raw markup inside JSON-LD: {raw[:80]!r}")
            try:
                json.loads(raw)
            except ValueError:
                self.found.append(f"JSON-LD that is not JSON: {raw[:80]!r}")


#: what our own pages use (the subscribe form, the stylesheet, meta tags, the copy-link field)
PAGE_TAGS = {"form", "input", "button", "link", "meta"}


def executable(html: str, allowed: set[str] | None = None) -> list[str]:
    """What in `html` could run; [] when it is inert. Fragments (feed content) allow nothing."""
    return parse(html, allowed).found


def parse(html: str, allowed: set[str] | None = None) -> Executable:
    parser = Executable(set() if allowed is None else allowed)
    parser.feed(html)
    parser.close()
    return parser
