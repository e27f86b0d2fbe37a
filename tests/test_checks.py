"""Pre-flight checks without system tools: each failing fixture trips exactly its check."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from newsletter.checks import Level, Report
from newsletter.checks.content import check_content
from newsletter.checks.htmlscan import scan_html
from newsletter.checks.lint import check_lint
from newsletter.checks.parsed import Parsed
from newsletter.checks.report import Finding, error, warning
from newsletter.checks.size import check_size
from newsletter.checks.spam import check_spam, parse_report

CHECKS = Path(__file__).parent / "fixtures" / "checks"


def load(name: str) -> Parsed:
    return Parsed.from_bytes((CHECKS / name).read_bytes())


def problems(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.level != Level.INFO]


def all_static(message: Parsed, production: bool = False) -> list[Finding]:
    return (
        check_size(message)
        + check_lint(message, production=production)
        + check_content(message, production=production)
    )


def test_the_default_message_passes_every_static_check() -> None:
    assert problems(all_static(load("good.eml"))) == []


@pytest.mark.parametrize(
    ("fixture", "check", "level", "words"),
    [
        ("oversize.eml", "size", Level.ERROR, "Gmail clips"),
        ("no-list-unsubscribe-post.eml", "lint", Level.ERROR, "List-Unsubscribe-Post is missing"),
        ("relative-link.eml", "content", Level.ERROR, "'/abs/2606.07527' is not an absolute"),
        ("missing-alt.eml", "content", Level.ERROR, "chart.png has no alt text"),
        ("all-caps-subject.eml", "lint", Level.WARNING, "all capitals"),
        ("qp-line-78.eml", "lint", Level.ERROR, "quoted-printable line of 78 characters"),
    ],
)
def test_each_failing_fixture_is_caught_by_its_check(
    fixture: str, check: str, level: Level, words: str
) -> None:
    found = problems(all_static(load(fixture)))
    assert found, f"{fixture} passed every check"
    assert {f.check for f in found} == {check}
    assert any(f.level == level and words in f.message for f in found), found
    assert all(f.fix for f in found), "every problem comes with a fix"


def test_size_warns_between_90_and_102_kb() -> None:
    good = load("good.eml")
    html = good.html + "x" * (95 * 1024 - len(good.html.encode()))
    (finding,) = check_size(Parsed(good.raw, good.mime, html, good.text))
    assert finding.level == Level.WARNING and "95.0 KB" in finding.message


def test_a_line_over_998_characters_and_raw_8bit_headers_are_errors() -> None:
    good = (CHECKS / "good.eml").read_bytes()
    head, _, body = good.partition(b"\r\n\r\n")
    raw = head + "\r\nX-Note: caf\u00e9".encode() + b"\r\n\r\n" + body + b"A" * 1200 + b"\r\n"
    messages = [f.message for f in check_lint(Parsed.from_bytes(raw), production=False)]
    assert any("1200 characters; SMTP allows 998" in m for m in messages)
    assert any("raw 8-bit characters" in m for m in messages)


def test_missing_headers_and_structure_are_named() -> None:
    raw = b"From: a@b.org\r\nSubject: Hi there all\r\nContent-Type: text/html\r\n\r\n<p>hi</p>\r\n"
    messages = [f.message for f in check_lint(Parsed.from_bytes(raw), production=True)]
    for name in ("To", "Date", "Message-ID", "List-Unsubscribe", "List-Id"):
        assert f"header {name} is missing" in messages
    assert "message is text/html, not multipart/alternative" in messages
    assert "no text/plain part" in messages


def test_production_turns_http_unsubscribe_and_placeholder_links_into_errors() -> None:
    raw = (CHECKS / "good.eml").read_bytes().replace(b"<https://", b"<http://")
    message = Parsed.from_bytes(raw)
    testing = problems(all_static(message, production=False))
    production = problems(all_static(message, production=True))
    assert testing == []
    assert {f.check for f in production} == {"lint", "content"}
    assert any("no https URL" in f.message for f in production)
    assert any("filings.example.org" in f.message for f in production)


def test_preheader_is_found_and_its_absence_warned() -> None:
    good = load("good.eml")
    assert scan_html(good.html).preheader.startswith("Also: Post-training")
    bare = good.html.replace('style="display:none;', 'style="')
    found = check_lint(Parsed(good.raw, good.mime, bare, good.text), production=False)
    assert [f.message.split(":")[0] for f in problems(found)] == ["no preheader"]


def test_image_heavy_mail_and_missing_width_are_flagged() -> None:
    html = "<html><body><p>Buy now.</p>" + '<img src="https://x.org/a.png" alt="a">' * 3
    found = check_content(Parsed(b"", None, html + "</body></html>", "text"), production=False)  # type: ignore[arg-type]
    messages = [(f.level, f.message) for f in found]
    assert (
        Level.WARNING,
        "image a.png has no width attribute: Outlook shows it at full size",
    ) in messages
    assert any(level == Level.ERROR and "filters flag image-only" in m for level, m in messages)


def test_spamassassin_missing_is_reported_with_the_install_line() -> None:
    (finding,) = check_spam(load("good.eml"), None)
    assert finding.level == Level.INFO
    assert "not installed" in finding.message and "apt-get install spamassassin" in finding.fix


def test_spamassassin_report_parsing_keeps_scores_and_wrapped_descriptions() -> None:
    output = (
        "Subject: x\n\nbody\n"
        "Content analysis details:   (6.2 points, 5.0 required)\n\n"
        " pts rule name              description\n"
        "---- ---------------------- ------------------------------------\n"
        "-0.0 NO_RELAYS              Informational: message was not relayed via SMTP\n"
        " 0.7 HTML_FONT_LOW_CONTRAST BODY: HTML font color similar or identical to\n"
        "                            background\n"
        " 5.5 SUBJ_ALL_CAPS          Subject is all capitals\n"
    )
    score = parse_report(output)
    assert score.score == 6.2 and score.required == 5.0
    assert [r.name for r in score.rules] == ["NO_RELAYS", "HTML_FONT_LOW_CONTRAST", "SUBJ_ALL_CAPS"]
    assert score.rules[1].description.endswith("identical to background")


def test_report_json_and_html_are_ordered_and_escaped() -> None:
    report = Report(
        subject="<b>Issue</b>",
        findings=[warning("lint", "subject <long>"), error("size", "too big", "trim")],
    )
    data = json.loads(report.to_json())
    assert data["ok"] is False and data["errors"] == 1 and data["warnings"] == 1
    assert [f["level"] for f in data["findings"]] == ["error", "warning"]
    html = report.to_html()
    assert "subject &lt;long&gt;" in html and "<long>" not in html
    assert html.index("too big") < html.index("subject")
