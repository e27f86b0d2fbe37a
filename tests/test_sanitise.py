"""Feed HTML is untrusted: what survives the sanitiser is a small, inert allow-list."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from newsletter.signals.annotations import read_file
from newsletter.signals.parse import parse_feed
from newsletter.signals.sanitise import html_to_text, plain, sanitise_html, text_to_html

BLEACH = Path(__file__).parent / "fixtures" / "feeds" / "bleach-regression-data"
_NOHREF = '<a rel="noopener noreferrer nofollow">x</a>'
_ACTIVE = re.compile(r"<\s*(script|style|iframe|object|embed|img|svg|form)|\son\w+\s*=", re.I)


def _cases() -> list[Path]:
    return sorted(BLEACH.glob("*.test"), key=lambda p: int(p.stem))


def test_bleach_regression_inputs_come_out_inert() -> None:
    cases = _cases()
    assert len(cases) > 15
    for path in cases:
        dirty = path.read_text(encoding="utf-8").split("\n--\n")[0]
        clean = sanitise_html(dirty, base_url="https://example.org/")
        assert not _ACTIVE.search(clean), (path.name, clean)
        assert "javascript:" not in clean.lower(), (path.name, clean)
        assert sanitise_html(clean, base_url="https://example.org/") == clean, path.name


@pytest.mark.parametrize(
    ("dirty", "clean"),
    [
        ('<p onclick="x()">Hi <script>alert(1)</script>there</p>', "<p>Hi there</p>"),
        ("<style>p{color:red}</style><b>bold</b>", "<b>bold</b>"),
        ('<a href="javascript:alert(1)">x</a>', _NOHREF),
        ('<a href="data:text/html;base64,PHNjcmlwdD4=">x</a>', _NOHREF),
        ('<p>pixel<img src="https://t.example/p.gif" width="1" height="1"></p>', "<p>pixel</p>"),
        ('<iframe src="https://evil.example"></iframe><em>ok</em>', "<em>ok</em>"),
        (
            '<a href="/post/2" title="t">rel</a>',
            '<a href="https://blog.example.org/post/2" title="t"'
            ' rel="noopener noreferrer nofollow">rel</a>',
        ),
    ],
)
def test_allow_list(dirty: str, clean: str) -> None:
    assert sanitise_html(dirty, base_url="https://blog.example.org/feed") == clean


def test_relative_links_resolve_against_the_feed_base() -> None:
    body = b"""<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"
      xml:base="https://blog.example.org/2026/"><title>b</title>
      <entry><title>t</title><link href="post.html"/><id>tag:b,1</id>
      <content type="html">&lt;a href="../about"&gt;about&lt;/a&gt;
      &lt;img src="x.gif"&gt;</content></entry></feed>"""
    (item,) = parse_feed(body).items
    assert item.link == "https://blog.example.org/2026/post.html"
    assert 'href="https://blog.example.org/about"' in item.summary_html
    assert "img" not in item.summary_html


def test_plain_text_keeps_paragraphs_and_unescapes() -> None:
    assert html_to_text("<p>A &amp; B</p><p>C<br>D</p>") == "A & B\n\nC\n\nD"
    assert plain("  <b>Fish</b> &amp;\n chips ") == "Fish & chips"
    assert text_to_html("one <two>\n\nthree") == "<p>one &lt;two&gt;</p><p>three</p>"


def test_titles_are_one_line_whatever_the_feed_or_editor_sends(tmp_path: Path) -> None:
    body = (
        b'<rss version="2.0"><channel><title>x</title><item><title>Capex\r\nBcc: a@evil.example'
        b"\r\n\r\nbody</title><link>https://e.org/a</link></item></channel></rss>"
    )
    (item,) = parse_feed(body).items
    assert item.title == "Capex Bcc: a@evil.example body"
    path = tmp_path / "a.jsonl"
    path.write_text('{"url": "https://e.org/a", "title": "A\\r\\nBcc: b@evil.example"}\n')
    (record,) = read_file(path)
    assert record.values["title"] == "A Bcc: b@evil.example"
