"""`newsletter check` end to end: the demo's dispatch passes; broken messages exit 1."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

CHECKS = Path(__file__).parent / "fixtures" / "checks"


def require(program: str) -> None:
    if shutil.which(program) is None:
        if os.environ.get("CI"):
            pytest.fail(f"{program} is not installed (.ci/run installs it with apt-get)")
        pytest.skip(f"{program} is not installed")


@pytest.mark.slow
@pytest.mark.browser
def test_the_default_dispatch_passes_every_check(run, tmp_path: Path) -> None:
    require("spamassassin")
    require("chromium")
    assert run("demo").exit_code == 0
    result = run("check", "--week", "2026-W24", "--json", "--screenshots", "shots")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ok"] is True and report["errors"] == 0 and report["warnings"] == 0
    messages: dict[str, list[str]] = {}
    for finding in report["findings"]:
        messages.setdefault(finding["check"], []).append(finding["message"])
    assert set(messages) == {"size", "lint", "content", "auth", "spam", "render"}
    (spam,) = messages["spam"]
    assert float(spam.split()[2]) <= 0.5, spam
    assert messages["render"][0].startswith("no sideways scrolling at 375 or 600 px")
    assert (tmp_path / "shots" / "email-375.png").stat().st_size > 10_000
    assert "rendering at 375 and 600 px" in result.stderr  # progress goes to stderr


def test_a_broken_message_file_exits_1_with_the_finding_and_fix(run) -> None:
    fixture = str(CHECKS / "no-list-unsubscribe-post.eml")
    result = run("check", "--eml", fixture, "--skip", "spam", "--skip", "render")
    assert result.exit_code == 1
    assert "ERROR    lint     header List-Unsubscribe-Post is missing" in result.stdout
    assert "fix: add 'List-Unsubscribe-Post: List-Unsubscribe=One-Click'" in result.stdout
    assert "1 error(s)" in result.stdout.splitlines()[-1]
    assert "SpamAssassin" not in result.stdout and "render" not in result.stdout


def test_production_settings_refuse_placeholder_links(run) -> None:
    assert run("demo").exit_code == 0
    args = ("check", "--week", "2026-W24", "--json", "--skip=spam", "--skip=render")

    public = run(*args, extra_env={"NEWSLETTER_PUBLIC_URL": "https://brief.news"})
    assert public.exit_code == 1
    findings = json.loads(public.stdout)["findings"]
    errors = [f["message"] for f in findings if f["level"] == "error"]
    assert len(errors) == 1 and "readers cannot open them" in errors[0]
    assert "filings.example.org" in errors[0] and "localhost:8000" in errors[0]

    # real mail with the default local public URL: warned, not refused (a staging run)
    staging = run(*args, extra_env={"NEWSLETTER_SENDER": "smtp"})
    assert staging.exit_code == 0
    warnings = [
        f["message"] for f in json.loads(staging.stdout)["findings"] if f["level"] == "warning"
    ]
    assert warnings == [
        "mail leaves through smtp but NEWSLETTER_PUBLIC_URL is http://localhost:8000:"
        " readers' unsubscribe and archive links will not work"
    ]


def test_no_dispatch_is_one_clear_line(run) -> None:
    assert run("init").exit_code == 0
    result = run("check", "--week", "2026-W30")
    assert result.exit_code == 1
    assert result.output.strip() == (
        "Error: no dispatch for 2026-W30 and none for any other week: 2026-W30 has no signals"
        " to build one from (`newsletter collect` fetches them)"
    )


def test_help_lists_the_options(run) -> None:
    result = run("check", "--help")
    assert result.exit_code == 0
    for option in ("--week", "--json", "--links", "--screenshots", "--eml"):
        assert option in result.output
    assert run("dkim", "keygen", "--help").exit_code == 0


def test_the_preview_panel_page_shows_the_report_or_why_it_cannot(
    store, settings, tmp_path: Path
) -> None:
    from newsletter.checks.panel import checks_page
    from newsletter.weeks import Week

    page = checks_page(store, settings, Week(2026, 30))
    assert page.startswith("<!doctype html>")
    assert "The checks cannot run: no dispatch for 2026-W30" in page
