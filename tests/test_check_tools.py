"""The checks that drive real system tools: SpamAssassin (offline) and headless Chromium.

A missing tool fails the test in CI (CI is set) and skips it only on a developer's machine.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from newsletter.checks.parsed import Parsed
from newsletter.checks.render import check_render, find_chromium
from newsletter.checks.report import Level
from newsletter.checks.spam import check_spam, find_spamassassin, spam_score

CHECKS = Path(__file__).parent / "fixtures" / "checks"


def require(found: str | None, name: str) -> str:
    if found is None:
        message = f"{name} is not installed (.ci/run installs it with apt-get)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


@pytest.fixture(scope="module")
def spamassassin() -> str:
    return require(find_spamassassin(), "spamassassin")


@pytest.fixture(scope="module")
def chromium() -> str:
    require(importlib.util.find_spec("playwright") and "playwright", "the playwright package")
    return require(find_chromium(), "chromium")


@pytest.mark.slow
def test_default_message_scores_at_most_half_a_point_offline(spamassassin: str) -> None:
    message = Parsed.from_bytes((CHECKS / "good.eml").read_bytes())
    score = spam_score(message.raw, spamassassin)
    assert score.score <= 0.5, score.rules
    assert "HTML_FONT_LOW_CONTRAST" not in {r.name for r in score.rules}
    (finding,) = check_spam(message, spamassassin)
    assert finding.level == Level.INFO and finding.message.startswith("SpamAssassin score ")


@pytest.mark.slow
def test_the_bare_mjml_preheader_trick_is_scored_and_named(spamassassin: str) -> None:
    """What the default template used to emit: white 1px text, which the check must explain."""
    raw = (CHECKS / "good.eml").read_bytes()
    plain = Parsed.from_bytes(raw)
    hidden = 'style="display:none;font-size:1px;color:#ffffff;line-height:1px;max-height:0px;'
    html = plain.html.replace('style="display:none;', hidden, 1)
    mime = plain.mime
    mime.get_payload()[1].set_content(html, subtype="html", cte="quoted-printable")
    (finding,) = check_spam(Parsed.from_bytes(mime.as_bytes()), spamassassin)
    assert "HTML_FONT_LOW_CONTRAST +" in finding.message  # the rule, its points, its meaning
    assert "font color similar or identical to background" in finding.message
    assert float(finding.message.split()[2]) > 0.5


@pytest.mark.browser
def test_default_message_has_one_column_and_no_overflow_and_writes_screenshots(
    chromium: str, tmp_path: Path
) -> None:
    html = Parsed.from_bytes((CHECKS / "good.eml").read_bytes()).html
    found = check_render(html, chromium, tmp_path / "shots")
    assert [f.level for f in found] == [Level.INFO, Level.INFO], found
    for width in (375, 600):
        png = (tmp_path / "shots" / f"email-{width}.png").read_bytes()
        assert png.startswith(b"\x89PNG")
        assert int.from_bytes(png[16:20], "big") == width  # IHDR width: the viewport, no overflow


@pytest.mark.browser
@pytest.mark.parametrize(
    ("fixture", "words"),
    [
        ("wide-table.html", "at 375 px the email scrolls sideways"),
        ("two-columns.html", "at 375 px text sits in more than one column"),
    ],
)
def test_layouts_that_break_on_a_phone_are_errors(chromium: str, fixture: str, words: str) -> None:
    found = check_render((CHECKS / fixture).read_text(), chromium)
    errors = [f for f in found if f.level == Level.ERROR]
    assert len(errors) == 1 and errors[0].message.startswith(words), found
    assert errors[0].fix
