"""The rendered email: structure, links, escaping, missing fields, the text part, branding."""

from __future__ import annotations

import os
import re
from dataclasses import replace
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest

from newsletter.delivery.compose import Composer
from newsletter.dispatch.render import render_dispatch
from newsletter.dispatch.select import group_sections
from newsletter.models import Dispatch, Signal, Subscriber
from newsletter.settings import Settings
from newsletter.signals.sanitise import sanitise_html

READER = Subscriber(42, "ada@example.org", "Ada Lovelace", "active")


def make_signal(i: int, **fields: object) -> Signal:
    base = Signal(
        id=i,
        title=f"Signal number {i} about compute markets",
        url=f"https://arxiv.org/abs/2606.{i:05d}",
        published=datetime(2026, 6, 9, 4, 0, tzinfo=UTC),
        source_label="arXiv cs.LG",
        summary_html=f"<p>The abstract of paper {i}, with <em>emphasis</em>.</p>",
        summary_text=f"The abstract of paper {i}, with emphasis.",
        category="AI" if i % 2 else "Markets",
        signal_score=90 - i,
        horizon="medium term",
        why_now="Timely because the field just moved.",
        why_important="A strategic reader should care.",
        what_changes="Budgets move to supervised data.",
        winners=("GPU manufacturers", "Companies with large supervised datasets"),
        losers=("Companies lacking labelled data",),
        effects_direct="Direct effect.",
        effects_second="Second-order effect.",
        effects_third="Third-order effect.",
        editorial_confidence=90,
        structural_impact=60,
    )
    return replace(base, **fields)  # type: ignore[arg-type]


def make_dispatch(signals: list[Signal], settings: Settings, **fields: object) -> Dispatch:
    base = Dispatch(
        id=1,
        week="2026-W24",
        issue_number=7,
        status="draft",
        subject="Signal number 1 + more",
        preheader="Also: more signals",
        note=None,
        sections=tuple(group_sections(signals, settings.sections)),
    )
    return replace(base, **fields)  # type: ignore[arg-type]


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.images: list[dict[str, str | None]] = []
        self.anchors: list[tuple[str, str]] = []
        self._href: str | None = None
        self._text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "a":
            self.hrefs.append(values.get("href") or "")
            self._href, self._text = values.get("href") or "", ""
        if tag == "img":
            self.images.append(values)

    def handle_data(self, data: str) -> None:
        if self._href is not None:
            self._text += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._href is not None:
            self.anchors.append((self._text.strip(), self._href))
            self._href = None


def personal(dispatch: Dispatch, settings: Settings) -> tuple[str, str]:
    message = Composer(render_dispatch(dispatch, settings), settings, "k" * 20, "t").compose(READER)
    return message.html, message.text


@pytest.fixture
def twelve(settings: Settings) -> tuple[str, str]:
    dispatch = make_dispatch([make_signal(i) for i in range(1, 13)], settings)
    return personal(dispatch, settings)


def test_mobile_layout_and_readable_type(twelve: tuple[str, str]) -> None:
    html, _ = twelve
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    assert re.search(r"@media only screen and \(min-width:480px\)", html)  # one column below
    assert "max-width:600px" in html
    assert "font-size:16px" in html
    assert "prefers-color-scheme: dark" in html
    assert len(html.encode()) < 102_000, "Gmail clips messages over ~102 KB"


def test_every_link_is_absolute_and_the_footer_is_complete(
    twelve: tuple[str, str], settings: Settings
) -> None:
    html, _ = twelve
    parser = Links()
    parser.feed(html)
    assert parser.hrefs, "no links at all"
    assert all(re.match(r"^(https?://|mailto:)", h) for h in parser.hrefs), parser.hrefs
    anchors = {}
    for text, href in parser.anchors:
        anchors.setdefault(text, href)
    assert anchors["Unsubscribe"].startswith(f"{settings.public_url}/unsubscribe/")
    assert anchors["View in browser"] == f"{settings.public_url}/archive/2026-W24/"
    assert anchors["Read at arXiv cs.LG"] == "https://arxiv.org/abs/2606.00001"
    assert settings.postal_address in html
    assert "You receive this because ada@example.org subscribed to The Brief" in html
    assert "Hello Ada Lovelace," in html


def test_no_template_syntax_or_none_leaks(twelve: tuple[str, str]) -> None:
    for part in twelve:
        for leak in ("None", "{{", "{%", "}}", "@@", "<mj-", "undefined"):
            assert leak not in part, leak


def test_every_field_of_the_seed_pages_is_shown(twelve: tuple[str, str]) -> None:
    html, text = twelve
    for expected in (
        "Signal 89",
        "Medium term",
        "Source: arXiv cs.LG",
        "Why this matters",
        "Why now.",
        "Why it’s important.",
        "What changes.",
        "Winners",
        "GPU manufacturers",
        "Losers",
        "Second-order effects",
        "Direct.",
        "Third.",
        "Editorial confidence: 90 / 100",
        "Structural impact: 60 / 100",
        "Read at arXiv cs.LG",
        "Issue 7",
    ):
        assert expected in html, expected
        assert expected.rstrip(".") in text, expected


def test_missing_fields_are_left_out_cleanly(settings: Settings) -> None:
    bare = Signal(
        id=1,
        title="A bare signal",
        url="https://example.org/bare",
        published=datetime(2026, 6, 9, tzinfo=UTC),
    )
    html, text = personal(make_dispatch([bare], settings), settings)
    for absent in (
        "Why this matters",
        "Winners",
        "Losers",
        "Second-order effects",
        "Editorial confidence",
        "Structural impact",
        "Source:",
        "Signal 0",
        "term",
    ):
        assert absent not in html, absent
        assert absent not in text, absent
    assert "A bare signal" in html and "Read at the source" in html
    assert "None" not in html and "None" not in text
    # no empty list or paragraph left behind
    assert "<ul></ul>" not in html and "<strong>.</strong>" not in html


def test_untrusted_text_is_escaped_never_run_or_evaluated(settings: Settings) -> None:
    evil = make_signal(
        1,
        title="<script>alert('t')</script> {{ 7*7 }} {% raw %}",
        summary_html=sanitise_html(
            "<p>ok</p><script>alert('s')</script><img src=x onerror=alert(1)>"
            "<a href='javascript:alert(1)'>js</a> {{ 6*7 }}"
        ),
        why_now="</mj-text><mj-raw><script>alert('w')</script></mj-raw>",
        winners=("<b>bold</b>",),
        source_label="Evil & Co <x>",
    )
    dispatch = make_dispatch([evil], settings, subject="{{ config }}", note="<script>x</script>")
    html, text = personal(dispatch, settings)
    assert "<script" not in html and "onerror" not in html and "javascript:" not in html
    assert "&lt;script&gt;alert(&#39;t&#39;)&lt;/script&gt; {{ 7*7 }} {% raw %}" in html
    assert "49" not in html and "42" not in html
    assert "&lt;/mj-text&gt;&lt;mj-raw&gt;" in html
    assert "&lt;b&gt;bold&lt;/b&gt;" in html
    assert "Source: Evil &amp; Co &lt;x&gt;" in html
    assert "&lt;script&gt;x&lt;/script&gt;" in html  # the Markdown note shows raw HTML as text
    # the text part is text: the same words, unescaped
    assert "<script>alert('t')</script> {{ 7*7 }}" in text


def test_editors_note_is_markdown(settings: Settings) -> None:
    note = "A **quiet** week. See [the filing](https://example.org/f) and [this](/relative)."
    html, text = personal(make_dispatch([make_signal(1)], settings, note=note), settings)
    assert "<strong>quiet</strong>" in html
    assert '<a href="https://example.org/f">the filing</a>' in html
    assert 'href="/relative"' not in html  # only absolute links become links
    assert "A **quiet** week." in text


def test_text_part_is_wrapped_with_links_on_their_own_lines(twelve: tuple[str, str]) -> None:
    _, text = twelve
    for line in text.splitlines():
        assert len(line) <= 78 or re.fullmatch(r"\s*https?://\S+", line), line
    assert "<" not in text.replace("<script>", "")  # no HTML in the text part
    lines = [line.strip() for line in text.splitlines()]
    assert "https://arxiv.org/abs/2606.00001" in lines
    assert "http://localhost:8000/archive/2026-W24/" in lines
    assert any(line.startswith("http://localhost:8000/unsubscribe/") for line in lines)
    assert text.index("Read at arXiv cs.LG:") < text.index("https://arxiv.org/abs/2606.00001")


def test_branding_from_settings(settings: Settings) -> None:
    branded = settings.replace(
        name="The Continuum Brief",
        tagline="Systems, weekly.",
        accent_color="#aa3300",
        logo_url="https://cdn.example.org/logo.png",
    )
    html, text = personal(make_dispatch([make_signal(1)], branded), branded)
    parser = Links()
    parser.feed(html)
    assert [i.get("alt") for i in parser.images] == ["The Continuum Brief"]
    assert parser.images[0]["src"] == "https://cdn.example.org/logo.png"
    assert "#aa3300" in html and "Systems, weekly." in html
    assert "THE CONTINUUM BRIEF" in text


def test_sections_follow_the_configured_order(settings: Settings) -> None:
    signals = [make_signal(1, category="Energy"), make_signal(2, category="AI"),
               make_signal(3, category="Zoology"), make_signal(4, category="Markets")]  # fmt: skip
    _, text = personal(make_dispatch(signals, settings), settings)
    order = [text.index(f"== {name.upper()} ==") for name in ("AI", "Markets", "Energy", "Zoology")]
    assert order == sorted(order)


def test_links_in_a_summary_are_listed_in_the_text_part(settings: Settings) -> None:
    summary = sanitise_html(
        '<p>See <a href="/abs/2606.1?v=1&amp;x=2">the paper</a> and <a href="mailto:a@b.org">'
        "mail</a>.</p>",
        "https://arxiv.org/list",
    )
    signal = make_signal(1, summary_html=summary, summary_text="See the paper and mail.")
    html, text = personal(make_dispatch([signal], settings), settings)
    assert 'href="https://arxiv.org/abs/2606.1?v=1&amp;x=2"' in html
    lines = text.splitlines()
    at = lines.index("Links:")
    assert lines[at + 1] == "  https://arxiv.org/abs/2606.1?v=1&x=2"


GOLDEN = Path(__file__).parent / "fixtures" / "render"


@pytest.mark.parametrize("part", ["html", "txt"])
def test_golden_email(settings: Settings, part: str) -> None:
    """The whole rendered email for a fixed dispatch; `UPDATE_GOLDEN=1 pytest` rewrites it.

    A diff here is a change a reader would see: review it, then update the file.
    """
    signals = [make_signal(1), make_signal(2, winners=(), effects_third=None, horizon=None)]
    signals.append(Signal(3, "A bare signal", "https://example.org/3", signals[0].published))
    dispatch = make_dispatch(signals, settings, note="A **quiet** week.")
    html, text = personal(dispatch, settings)
    got = html if part == "html" else text
    path = GOLDEN / f"dispatch.{part}"
    if os.environ.get("UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(got, encoding="utf-8")
    assert path.is_file(), f"{path} missing: run UPDATE_GOLDEN=1 pytest {__file__}"
    assert got == path.read_text(encoding="utf-8")


VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}  # fmt: skip


class Balance(HTMLParser):
    """Every element closed, in order: what a strict parser (and Outlook's) needs."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else ''}>")
            return
        self.stack.pop()


def test_html_is_well_formed(twelve: tuple[str, str], settings: Settings) -> None:
    evil = make_signal(1, summary_html=sanitise_html("<p>unclosed <b>bold <i>both"))
    for html in (twelve[0], personal(make_dispatch([evil], settings, note="*x"), settings)[0]):
        checker = Balance()
        checker.feed(html)
        checker.close()
        assert html.startswith("<!doctype html>")
        assert checker.errors == [] and checker.stack == []


def test_long_list_items_wrap_under_their_bullet(settings: Settings) -> None:
    long = "Approaches heavily reliant on unsupervised learning beyond foundational pre-training"
    _, text = personal(make_dispatch([make_signal(1, losers=(long,))], settings), settings)
    assert "  - Approaches heavily reliant on unsupervised learning beyond foundational\n" in text
    assert "\n    pre-training\n" in text
    assert all(len(line) <= 78 for line in text.splitlines() if "://" not in line)
