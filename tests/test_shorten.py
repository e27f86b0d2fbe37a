"""Long summaries are shortened at a word with "…" for the email's cards; the store keeps all."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from newsletter.models import Signal
from newsletter.signals.sanitise import html_to_text
from newsletter.signals.shorten import ELLIPSIS, cut_html, cut_text, shorten_summary

ABSTRACT = (
    "The prevailing paradigm for training LLMs has evolved to rely on a massive post-training "
    "phase consisting of SFT and RL. In this position paper, we argue that this methodology "
    "effectively marks a reversion to the “pre-train then fine-tune” approach of the BERT era, "
    "explicitly tailoring models to the desired behaviors and specific benchmarks on which they "
    "are evaluated. We begin with a historical overview of LLMs, describing the different phases "
    "of the LLM evolution. We argue that the current landscape is remarkably similar to the "
    "early days of the field, and that this has consequences for how we evaluate progress."
)


def test_text_is_cut_at_a_word_within_the_limit() -> None:
    for limit in (40, 120, 333, 500):
        cut = cut_text(ABSTRACT, limit)
        assert len(cut) <= limit and cut.endswith(ELLIPSIS)
        kept = cut.removesuffix(ELLIPSIS)
        assert ABSTRACT.startswith(kept)
        assert ABSTRACT[len(kept)] in " ,.;", "cut inside a word"
        assert not kept.endswith((" ", ",", "."))
    assert cut_text(ABSTRACT, len(ABSTRACT)) == ABSTRACT
    assert cut_text(ABSTRACT, 0) == ABSTRACT  # 0: no limit
    assert cut_text("Pneumonoultramicroscopicsilicovolcanoconiosis", 10) == "Pneumonou…"


def test_html_keeps_links_and_closes_what_the_cut_left_open() -> None:
    fragment = (
        '<p>The <em>prevailing paradigm</em> for <a href="https://example.org/a">training '
        "LLMs</a> has evolved.</p><p>A second paragraph &amp; more words here.</p>"
    )
    assert cut_html(fragment, 40) == (
        '<p>The <em>prevailing paradigm</em> for <a href="https://example.org/a"'
        ' rel="noopener noreferrer nofollow">training…</a></p>'
    )
    assert cut_html(fragment, 70).endswith("<p>A second…</p>")
    assert cut_html(fragment, 1000) == fragment


def test_signal_summary_shortened_the_same_way_in_html_and_text() -> None:
    html = "".join(f"<p>{p}</p>" for p in ABSTRACT.split(". "))
    signal = Signal(1, "T", "https://e.org/1", datetime(2026, 6, 9, tzinfo=UTC),
                    summary_html=html, summary_text=html_to_text(html))  # fmt: skip
    short = shorten_summary(signal, 500)
    assert len(short.summary_text) <= 500 and short.summary_text.endswith(ELLIPSIS)
    assert html_to_text(short.summary_html) == short.summary_text
    assert signal.summary_text == html_to_text(html)  # the original is untouched
    brief = replace(signal, summary_text="Short.", summary_html="<p>Short.</p>")
    assert shorten_summary(brief, 500) is brief
