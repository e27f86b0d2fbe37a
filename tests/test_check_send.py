"""The pre-flight gate before a send: an error stops it (nothing sent) unless forced."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from newsletter.checks import Tools
from newsletter.checks.gate import PreflightError, preflight
from newsletter.demo import load_sample as load_bundled_sample
from newsletter.dispatch.build import approve, build_dispatch
from newsletter.settings import Settings
from newsletter.signals.annotations import import_annotations
from newsletter.store import Store
from newsletter.weeks import Week

SAMPLE = Path(__file__).parent.parent / "newsletter" / "sample"
WEEK = Week(2026, 24)
NO_TOOLS = Tools(spamassassin=None, chromium=None)  # the gate is under test here, not the tools
LONG = "A long editorial paragraph that an over-eager analyst kept writing. " * 12


def load_sample(store: Store, tmp_path: Path, extra_signals: int = 0) -> None:
    load_bundled_sample(store, now=datetime(2026, 6, 14, tzinfo=UTC))
    if extra_signals:
        heavy = tmp_path / "heavy.jsonl"
        heavy.write_text(
            "\n".join(
                json.dumps(
                    {
                        "title": f"Heavy signal {i}",
                        "url": f"https://research.example.org/heavy/{i}",
                        "published": "2026-06-10T09:00:00+00:00",
                        "category": "Science",
                        "signal_score": 60,
                        "why_now": LONG,
                        "why_important": LONG,
                        "what_changes": LONG,
                    }
                )
                for i in range(extra_signals)
            )
        )
        import_annotations(store, [heavy])


@pytest.fixture
def heavy(store: Store, settings: Settings, tmp_path: Path) -> Settings:
    """An approved dispatch far over Gmail's clipping limit."""
    load_sample(store, tmp_path, extra_signals=40)
    settings = settings.replace(max_signals=60)
    build_dispatch(store, settings, WEEK)
    approve(store, settings, WEEK)
    return settings


def test_an_oversize_dispatch_is_refused_and_nothing_is_sent(store: Store, heavy: Settings) -> None:
    with pytest.raises(PreflightError) as caught:
        preflight(store, heavy, WEEK, tools=NO_TOOLS)
    message = str(caught.value)
    assert message.startswith("pre-flight checks failed, nothing sent: size: HTML is")
    assert "Gmail clips" in message and "--force" in message and "\n" not in message


def test_force_and_dry_run_return_the_report_instead(store: Store, heavy: Settings) -> None:
    for options in ({"force": True}, {"dry_run": True}):
        report = preflight(store, heavy, WEEK, tools=NO_TOOLS, **options)
        assert report is not None and not report.ok
        assert [f.check for f in report.errors] == ["size"]


def test_a_missing_dispatch_is_left_to_send_to_report(store: Store, settings: Settings) -> None:
    assert preflight(store, settings, Week(2026, 30)) is None


def test_send_refuses_on_a_check_error_until_forced(
    run, store: Store, settings: Settings, tmp_path: Path
) -> None:
    from newsletter.readers.subscriptions import add_subscriber

    load_sample(store, tmp_path)
    add_subscriber(store, "ada@example.org", name="Ada", confirmed=True)
    build_dispatch(store, settings, WEEK)
    approve(store, settings, WEEK)
    # public settings, but the sample signals link to example domains readers cannot open
    public = {"NEWSLETTER_PUBLIC_URL": "https://brief.news"}
    outbox = tmp_path / "outbox"

    dry = run("send", "--week", str(WEEK), "--dry-run", extra_env=public)
    assert dry.exit_code == 0, dry.output
    assert "error: content: " in dry.stderr and "readers cannot open them" in dry.stderr

    refused = run("send", "--week", str(WEEK), extra_env=public)
    assert refused.exit_code == 1
    last = refused.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: pre-flight checks failed, nothing sent: content: ")
    assert "--force" in last
    assert not list(outbox.rglob("*.eml"))

    forced = run("send", "--week", str(WEEK), "--force", extra_env=public)
    assert forced.exit_code == 0, forced.output
    assert len(list(outbox.rglob("*.eml"))) == 1


def test_weekly_passes_the_same_gate(run, tmp_path: Path) -> None:
    """The cron job is a send too: a check error stops it (nothing sent) until --force."""
    this_week = tmp_path / "this-week.json"
    this_week.write_text(
        json.dumps(
            {
                "title": "A signal from this week",
                "url": "https://research.example.org/this-week",
                "published": datetime.now(UTC).isoformat(),
                "category": "AI",
                "signal_score": 70,
            }
        )
    )
    assert run("signals", "import", str(this_week)).exit_code == 0
    assert run("subscribers", "add", "ada@example.org", "--confirmed").exit_code == 0
    public = {"NEWSLETTER_PUBLIC_URL": "https://brief.news", "NEWSLETTER_AUTO_APPROVE": "true"}
    outbox = tmp_path / "outbox"

    refused = run("weekly", "--no-collect", extra_env=public)
    assert refused.exit_code == 1
    assert "pre-flight checks failed, nothing sent: content:" in refused.stderr
    assert not list(outbox.rglob("*.eml"))

    forced = run("weekly", "--no-collect", "--force", extra_env=public)
    assert forced.exit_code == 0, forced.output
    assert len(list(outbox.rglob("*.eml"))) == 1
