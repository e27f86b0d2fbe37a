"""Rendering a dispatch: Jinja2 -> MJML -> HTML once per dispatch, a plain-text part from the
same data, and per-subscriber parts filled into the compiled output by substitution, never by
compiling again.
"""

from __future__ import annotations

import functools
import html
import re
import secrets
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import jinja2
import mjml
from markdown_it import MarkdownIt
from markupsafe import Markup

from newsletter.dispatch import card as cards
from newsletter.errors import NewsletterError
from newsletter.models import Dispatch, Signal, TrackedLink
from newsletter.settings import Settings

#: filled per message (delivery.compose.reader_values) or for the web archive (archive_values);
#: `click` follows each tracked link in per-reader mode (engagement.links.reader_part)
SLOTS = (
    "unsubscribe_url",
    "unsubscribe_label",
    "preferences_url",
    "greeting",
    "email",
    "reason",
    "reason_text",
    "click",
)
TEXT_WIDTH = 76


def templates_dir() -> Path:
    """The installed copy (wheel) or the repository's `templates/` (editable install, tests)."""
    package = Path(__file__).parent.parent
    installed = package / "templates"
    return installed if installed.is_dir() else package.parent / "templates"


def wrap(text: str, width: int = TEXT_WIDTH, indent: str = "", first: str | None = None) -> str:
    """Wrap paragraphs for the text part without ever breaking a URL; `first` starts the first
    line instead of `indent` (a list item's "  - ")."""
    paragraphs = [p for p in (text or "").split("\n\n") if p.strip()]
    return "\n\n".join(
        textwrap.fill(
            " ".join(p.split()),
            width=width,
            initial_indent=indent if first is None or i else first,
            subsequent_indent=indent,
            break_long_words=False,
            break_on_hyphens=False,
        )
        for i, p in enumerate(paragraphs)
    )


def _markdown() -> MarkdownIt:
    """CommonMark without raw HTML; links only to absolute http(s) or mailto targets."""
    md = MarkdownIt("commonmark", {"html": False, "typographer": True}).enable("replacements")
    md.validateLink = lambda url: url.lower().startswith(  # type: ignore[method-assign]
        ("https://", "http://", "mailto:")
    )
    return md


_MARKDOWN = _markdown()


_HREF = re.compile(r'<a\s[^>]*?href="([^"]+)"')


def links(fragment: str) -> list[str]:
    """The absolute links of a sanitised fragment, in order, once each (for the text part)."""
    found = (html.unescape(h) for h in _HREF.findall(fragment or ""))
    return list(dict.fromkeys(h for h in found if h.startswith(("https://", "http://"))))


class LinkTracker(Protocol):
    """Rewrites the email's content links to counted ones (`newsletter.engagement.links`)."""

    mode: str
    per_reader: bool

    @property
    def links(self) -> tuple[TrackedLink, ...]: ...

    def __call__(self, url: str, signal_id: int | None, kind: str) -> str: ...

    def pixel(self) -> str | None: ...


#: what the footer says about links, by NEWSLETTER_TRACKING (off: nothing to say)
TRACKING_NOTES = {
    "aggregate": "Clicks on the links in this email are counted per link, never per reader.",
    "per-reader": "This email records which of its links you follow (per-reader click tracking).",
}


def _tracking(tracker: LinkTracker | None, click: str) -> dict[str, Any]:
    """What the templates use to write links: `track(url, signal_id, kind)`, `track_html`
    for the links inside a summary, the open pixel and the mode the footer states."""
    if tracker is None:
        return {
            "track": lambda url, signal_id, kind: url,
            "track_html": lambda fragment, signal_id: fragment,
            "pixel": None,
            "tracking": "off",
        }
    suffix = click if tracker.per_reader else ""

    def track(url: str, signal_id: int | None, kind: str) -> str:
        tracked = tracker(url, signal_id, kind)
        return tracked + suffix if tracked != url else url

    def track_html(fragment: Markup, signal_id: int | None) -> Markup:
        def rewrite(match: re.Match[str]) -> str:
            url = html.unescape(match[2])
            return match[1] + html.escape(track(url, signal_id, "summary")) + match[3]

        # sanitised HTML (signals.sanitise): double-quoted hrefs, made absolute
        return Markup(_HREF_ATTR.sub(rewrite, str(fragment)))  # noqa: S704

    return {
        "track": track,
        "track_html": track_html,
        "pixel": tracker.pixel(),
        "tracking": tracker.mode,
    }


_HREF_ATTR = re.compile(r'(<a\s[^>]*?href=")([^"]+)(")')


def has_html_special(value: str) -> bool:
    """Whether `html_escaped` would change `value` (five substring searches: a fifth of the
    time of one regular expression's scan over a reader's ~500 characters of values)."""
    return "&" in value or "<" in value or ">" in value or '"' in value or "'" in value


def html_escaped(value: str) -> str:
    """`markupsafe.escape(value)` as a plain str: the same five replacements, without the
    `Markup` object made and dropped for each of a reader's slot values."""
    if not has_html_special(value):
        return value
    return (
        value.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&#34;")
        .replace("'", "&#39;")
    )


def markdown_html(text: str | None) -> Markup:
    """The editor's note as safe HTML (raw HTML in it is shown as text)."""
    return Markup(_MARKDOWN.render(text or "").strip())  # noqa: S704 - html=False escapes it


def make_environment(directory: Path | None = None) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(directory or templates_dir())),
        bytecode_cache=_bytecode_cache(),
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("html", "mjml", "xml", "html.j2", "mjml.j2", "xml.j2"),
            default_for_string=True,
        ),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["wrap"] = wrap
    env.filters["markdown"] = markdown_html
    env.filters["links"] = links
    env.filters["date"] = lambda d: f"{d:%b} {d.day}, {d.year}"
    return env


@functools.cache
def _bytecode_cache() -> jinja2.BytecodeCache | None:
    """Jinja's own per-user cache of compiled templates (a private folder in the temp dir):
    compiling the email templates was ~0.2 s of every command that renders (`send`, `preview`,
    `weekly`). A template whose source changed is compiled again; no folder, no cache."""
    try:
        return jinja2.FileSystemBytecodeCache()
    except (OSError, RuntimeError):
        return None


def archive_values(settings: Settings) -> dict[str, str]:
    """The slot values of the web archive copy: no reader, no per-reader link."""
    reason = (
        f"This is the web archive copy of {settings.name}'s weekly dispatch."
        " Subscribe to receive the next one by email."
    )
    return {
        "unsubscribe_url": f"{settings.public_url}/",
        "unsubscribe_label": "Subscribe",
        "preferences_url": f"{settings.public_url}/",  # inside the inbox-only part: not shown
        "greeting": "",
        "email": "",
        "reason": reason,
        "reason_text": wrap(reason),
        "click": "",
    }


@dataclass(frozen=True)
class Template:
    """Compiled output split at the per-subscriber slots: parts[0] slot[0] parts[1] ..."""

    parts: tuple[str, ...]
    slots: tuple[str, ...]

    @classmethod
    def split(cls, text: str, nonce: str) -> Template:
        """Split at this render's slot markers (a random nonce: feed text cannot pose as one)."""
        slots = "|".join(SLOTS)
        pieces = re.split(rf"@@{re.escape(nonce)}-({slots})@@", text)
        return cls(tuple(pieces[0::2]), tuple(pieces[1::2]))

    def fill(self, values: dict[str, str]) -> str:
        out = [self.parts[0]]
        for slot, part in zip(self.slots, self.parts[1:], strict=True):
            out.append(values.get(slot, ""))
            out.append(part)
        return "".join(out)


@dataclass(frozen=True)
class Rendered:
    html: Template
    text: Template
    subject: str
    preheader: str
    compiled_html: str
    compiled_text: str
    nonce: str
    dispatch_id: int = 0
    #: the tracked links of a new rendering (stored when it is frozen); () for a frozen copy
    links: tuple[TrackedLink, ...] = ()

    @property
    def per_reader_links(self) -> bool:
        """Its links carry each reader's part (per-reader mode when it was rendered)."""
        return "click" in self.html.slots

    def personalise(self, values: dict[str, str]) -> tuple[str, str]:
        """HTML and text for one reader; HTML values are escaped, text values are not."""
        escaped = {k: html_escaped(v) for k, v in values.items()}
        return self.html.fill(escaped), self.text.fill(values)


HEADINGS = {
    "why": cards.WHY_HEADING,
    "winners": cards.WINNERS_HEADING,
    "losers": cards.LOSERS_HEADING,
    "effects": cards.EFFECTS_HEADING,
    "original": cards.ORIGINAL_HEADING,
}


def card_context(settings: Settings) -> dict[str, Any]:
    """What a template needs to show signal cards: `card_for(signal)` and the headings."""

    def card_for(signal: Signal) -> cards.Card:
        return cards.make_card(signal, settings)

    return {"card_for": card_for, "headings": HEADINGS}


def view_url(settings: Settings, dispatch: Dispatch) -> str:
    return f"{settings.public_url}/archive/{dispatch.week}/"


def disclosures(dispatch: Dispatch, settings: Settings) -> dict[int, str]:
    """The disclosure line of each signal whose read began as a machine draft; none unless the
    editor asked for it (NEWSLETTER_DRAFT_DISCLOSURE)."""
    if not settings.draft_disclosure:
        return {}
    return {s.id: settings.draft_disclosure_text for s in dispatch.signals if s.draft_id}


def render_dispatch(
    dispatch: Dispatch,
    settings: Settings,
    env: jinja2.Environment | None = None,
    *,
    draft_marks: Mapping[int, str] | None = None,
    tracker: LinkTracker | None = None,
) -> Rendered:
    """`draft_marks` flags cards that show an unaccepted draft: the editor's preview only.
    `tracker` rewrites the content links to counted ones (None: the links as they are)."""
    env = env or make_environment()
    nonce = secrets.token_hex(6)
    markers = {slot: f"@@{nonce}-{slot}@@" for slot in SLOTS}
    context: dict[str, Any] = {
        **_tracking(tracker, markers["click"]),
        "tracking_notes": TRACKING_NOTES,
        "dispatch": dispatch,
        "settings": settings,
        "view_url": view_url(settings, dispatch),
        "subscribe_url": f"{settings.public_url}/",
        "slot": markers,
        "draft_marks": dict(draft_marks or {}),
        "disclosures": disclosures(dispatch, settings),
        **card_context(settings),
    }
    source = env.get_template("email/dispatch.mjml.j2").render(context)
    try:
        result = mjml.mjml2html(source, disable_comments=True)
    except ValueError as exc:
        raise NewsletterError(f"email template does not compile as MJML: {exc}") from None
    text = env.get_template("email/dispatch.txt.j2").render(context)
    return Rendered(
        html=Template.split(result, nonce),
        text=Template.split(text, nonce),
        subject=dispatch.subject,
        preheader=dispatch.preheader,
        compiled_html=result,
        compiled_text=text,
        nonce=nonce,
        dispatch_id=dispatch.id,
        links=tracker.links if tracker else (),
    )


def stored_rendering(
    html: str, text: str, nonce: str, *, subject: str, preheader: str, dispatch_id: int
) -> Rendered:
    """A rendering kept in the database (the dispatch's frozen copy, or one of its variants)."""
    return Rendered(
        html=Template.split(html, nonce),
        text=Template.split(text, nonce),
        subject=subject,
        preheader=preheader,
        compiled_html=html,
        compiled_text=text,
        nonce=nonce,
        dispatch_id=dispatch_id,
    )


def frozen_rendering(dispatch: Dispatch) -> Rendered | None:
    """The copy stored when sending began: a resumed send mails exactly what the first run did."""
    if dispatch.html is None or dispatch.text is None:
        return None
    return stored_rendering(
        dispatch.html,
        dispatch.text,
        dispatch.slot_nonce or "",
        subject=dispatch.subject,
        preheader=dispatch.preheader,
        dispatch_id=dispatch.id,
    )
