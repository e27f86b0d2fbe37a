"""One pass over the email's HTML: links, images, visible text and the hidden preheader."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

_VOID = {
    "area",
    "base",
    "br",
    "col",
    "embed",
    "hr",
    "img",
    "input",
    "link",
    "meta",
    "source",
    "wbr",
}
_INVISIBLE = {"head", "style", "script", "title", "template"}
_HIDDEN = re.compile(r"display\s*:\s*none", re.I)


@dataclass(frozen=True)
class Image:
    src: str
    alt: str | None
    width: str | None


@dataclass
class Scan:
    links: list[str] = field(default_factory=list)
    images: list[Image] = field(default_factory=list)
    text: str = ""
    preheader: str | None = None


class _Scanner(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.scan = Scan()
        self.stack: list[tuple[str, bool]] = []  # (tag, hidden from the reader)
        self.words: list[str] = []
        self.in_body = False
        self.hidden_text: list[str] | None = None  # the first hidden block in the body

    @property
    def hidden(self) -> bool:
        return any(h for _, h in self.stack)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "body":
            self.in_body = True
        elif tag == "a" and values.get("href") is not None:
            self.scan.links.append((values["href"] or "").strip())
        elif tag == "img":
            self.scan.images.append(
                Image((values.get("src") or "").strip(), values.get("alt"), values.get("width"))
            )
        if tag in _VOID:
            return
        hides = tag in _INVISIBLE or bool(_HIDDEN.search(values.get("style") or ""))
        first_hidden = self.scan.preheader is None and self.hidden_text is None and not self.words
        if hides and self.in_body and not self.hidden and first_hidden:
            self.hidden_text = []
        self.stack.append((tag, hides))

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self.stack) - 1, -1, -1):
            if self.stack[depth][0] == tag:
                del self.stack[depth:]
                break
        if self.hidden_text is not None and not self.hidden:
            self.scan.preheader = " ".join(" ".join(self.hidden_text).split())
            self.hidden_text = None

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            if data.strip():
                self.words.append(data.strip())
        elif self.hidden_text is not None:
            self.hidden_text.append(data)


def scan_html(html: str) -> Scan:
    scanner = _Scanner()
    scanner.feed(html)
    scanner.close()
    scanner.scan.text = " ".join(" ".join(scanner.words).split())
    return scanner.scan
