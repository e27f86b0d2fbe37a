"""arXiv's TeX markup becomes readable text on collection, and only on arXiv items."""

from __future__ import annotations

from pathlib import Path

import pytest

from newsletter.signals.parse import parse_feed
from newsletter.signals.tex import detex, detex_html

FEEDS = Path(__file__).parent / "fixtures" / "feeds"
SAMPLE = Path(__file__).parent.parent / "newsletter" / "sample" / "feeds"


def test_real_abstract_math_is_readable() -> None:
    # corpus: rss.arxiv.org Atom cs.AI (zotero-arxiv-daily fixture, CC BY 4.0 abstract)
    body = (FEEDS / "arxiv" / "rss-arxiv-org_atom_cs.AI_2025-08-20_trimmed7.xml").read_bytes()
    (item,) = [i for i in parse_feed(body).items if "EventTSF" in i.summary_text]
    assert "10.7% higher forecasting accuracy and 1.13× faster training" in item.summary_text
    assert "$" not in item.summary_text and "\\times" not in item.summary_html
    assert "1.13× faster" in item.summary_html


def test_latex_quotes_of_the_seed_abstract_become_typographic() -> None:
    # the sample arXiv feed carries the seed page's abstract, ``pre-train then fine-tune''
    items = parse_feed((SAMPLE / "arxiv-cs-lg.xml").read_bytes()).items
    first = next(i for i in items if i.arxiv_id == "2606.07527")
    assert "the “pre-train then fine-tune” approach" in first.summary_text
    assert "“pre-train then fine-tune”" in first.summary_html
    assert "``" not in first.summary_html and "''" not in first.summary_text


def test_every_other_real_arxiv_abstract_is_left_as_it_was() -> None:
    # nothing in these abstracts is TeX: cleaning must not invent or drop a character
    for name in ("rss-arxiv-org_rss_cs.LG_2026-04-27_trimmed3.xml",
                 "export-arxiv-org_api_query_id_2013-02.xml"):  # fmt: skip
        for item in parse_feed((FEEDS / "arxiv" / name).read_bytes()).items:
            assert detex(item.summary_text) == item.summary_text


@pytest.mark.parametrize(
    ("tex", "text"),
    [
        ("the ``pre-train then fine-tune'' approach", "the “pre-train then fine-tune” approach"),
        ("the `best' model", "the ‘best’ model"),
        ("in the $L^2$ setting", "in the L² setting"),
        (
            "an error $\\varepsilon$ needs $\\Omega(1/\\varepsilon^2)$ samples",
            "an error ε needs Ω(1/ε²) samples",
        ),
        ("over $\\mathbb{R}^d$ in $O(n \\log n)$ time", "over ℝ^d in O(n log n) time"),
        ("a gain of $\\frac{1}{2}$ at $x_1 \\leq x_{ij}$", "a gain of 1/2 at x₁ ≤ x_ij"),
        (
            "we study \\emph{stochastic convex optimization} and \\textbf{prove} it",
            "we study stochastic convex optimization and prove it",
        ),
        ("as in prior work~\\cite{smith2020,doe21}.", "as in prior work."),
        ("see Fig.~2 and Section~\\ref{sec:x}", "see Fig.\u00a02 and Section"),
        ("about 50\\% of pages \\& links", "about 50% of pages & links"),
        ("pages 2--3 -- or --- all", "pages 2–3 – or — all"),
        ("Schr\\\"odinger meets G\\'{e}rard", "Schrödinger meets Gérard"),
        ("{BERT}-style models", "BERT-style models"),
        ("$$E = mc^2$$ and \\(a \\leq b\\)", "E = mc² and a ≤ b"),
        ("a $\\sim$10x speed-up", "a ∼10x speed-up"),
        (
            "code: \\url{https://github.com/~ada/x--y} and https://a.org/~b",
            "code: https://github.com/~ada/x--y and https://a.org/~b",
        ),
        ("costs $5 and $10 a unit", "costs $5 and $10 a unit"),  # prices are not math
        ("\\unknowncommand stays readable", "unknowncommand stays readable"),
    ],
)
def test_detex(tex: str, text: str) -> None:
    assert detex(tex) == text


def test_html_keeps_its_tags_and_links() -> None:
    fragment = '<p>The ``best&#x27;&#x27; <a href="https://x.org/~a">Fig.~1</a> $x &lt; y$</p>'
    assert detex_html(fragment) == (
        '<p>The “best” <a href="https://x.org/~a">Fig.\u00a01</a> x &lt; y</p>'
    )


def test_only_arxiv_items_are_treated_as_tex() -> None:
    feed = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>Wire</title>
    <item><title>Fund buys $5m of bonds -- ~3% yield</title><link>https://wire.example.org/1</link>
    <description>Prices near ~$5 and ``quoted''.</description></item></channel></rss>"""
    (item,) = parse_feed(feed).items
    assert item.title == "Fund buys $5m of bonds -- ~3% yield"
    assert item.summary_text == "Prices near ~$5 and ``quoted''."
