"""`newsletter weekly`: build, wait for approval or auto-approve, send once, resume after a
crash, and print the cron line and systemd units for this install."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from test_send_support import WEEK, add_subscribers, ready_week

from newsletter.delivery.deliver import send_dispatch
from newsletter.delivery.senders import MemorySender
from newsletter.demo import load_sample
from newsletter.settings import Settings
from newsletter.store import Store
from newsletter.weekly import run_weekly
from newsletter.weeks import Week

MONDAY = datetime(2026, 6, 15, 7, 0, tzinfo=UTC)  # cron fires in the week after the signals


def _sources(store: Store) -> None:
    load_sample(store, now=MONDAY)


def test_weekly_builds_waits_for_the_editor_then_sends_once(
    store: Store, settings: Settings
) -> None:
    _sources(store)
    emails = add_subscribers(store, 5)
    sender = MemorySender()
    waiting = run_weekly(store, settings, lambda: sender, week=WEEK)
    assert waiting.outcome == "awaiting-approval" and waiting.ok
    assert "dispatch approve" in waiting.lines[-1]
    assert sender.sent == [] and store.dispatches.get(str(WEEK))["status"] == "draft"

    from newsletter.dispatch.build import approve

    approve(store, settings, WEEK)
    sent = run_weekly(store, settings, lambda: sender, week=WEEK)
    assert sent.outcome == "sent" and sent.ok and sent.delivery.sent == 5
    assert sorted(m.to_addr for m in sender.sent) == emails

    again = run_weekly(store, settings, lambda: sender, week=WEEK)
    assert again.outcome == "already-sent" and again.collected is None
    assert len(sender.sent) == 5


def test_auto_approve_sends_in_one_run(store: Store, settings: Settings) -> None:
    _sources(store)
    add_subscribers(store, 3)
    sender = MemorySender()
    report = run_weekly(store, settings.replace(auto_approve=True), lambda: sender, week=WEEK)
    assert report.outcome == "sent" and len(sender.sent) == 3
    assert any("approved automatically" in line for line in report.lines)
    assert store.dispatches.get(str(WEEK))["status"] == "sent"
    # the "View in browser" page exists as soon as the dispatch is sent
    page = settings.web_archive_dir / str(WEEK) / "index.html"
    assert page.is_file() and any("web archive rebuilt" in line for line in report.lines)


def test_an_approved_dispatch_is_not_rebuilt_by_weekly(store: Store, settings: Settings) -> None:
    ready_week(store, settings)
    add_subscribers(store, 2)
    before = store.dispatches.selection(store.dispatches.get(str(WEEK))["id"])
    report = run_weekly(store, settings, MemorySender, week=WEEK, collect_feeds=False)
    assert report.outcome == "sent"
    assert store.dispatches.selection(store.dispatches.get(str(WEEK))["id"]) == before


def test_weekly_after_a_crash_resumes_and_reports_the_in_flight(
    store: Store, settings: Settings
) -> None:
    ready_week(store, settings)
    emails = add_subscribers(store, 8)
    first = MemorySender()
    send_dispatch(store, settings, first, WEEK, limit=3)
    dispatch_id = store.dispatches.get(str(WEEK))["id"]
    # the crash: one hand-off was in flight
    store.db.execute(
        "UPDATE deliveries SET status = 'sending' WHERE id = (SELECT min(id) FROM deliveries"
        " WHERE dispatch_id = ? AND status = 'queued')",
        [dispatch_id],
    )
    second = MemorySender()
    report = run_weekly(store, settings, lambda: second, week=WEEK, collect_feeds=False)
    mailed = [m.to_addr for m in first.sent + second.sent]
    assert len(mailed) == len(set(mailed)) == 7
    assert report.delivery.unknown == 1 and not report.ok
    assert set(emails) - set(mailed) == {r["email"] for r in store.deliveries.failures(dispatch_id)}


def test_weekly_on_an_empty_week_says_so(run) -> None:
    result = run("weekly", "--no-collect")
    assert result.exit_code == 0, result.output
    assert "no eligible signals" in result.output


def test_print_cron_and_systemd_name_this_install(run, tmp_path: Path) -> None:
    cron = run("weekly", "--print-cron")
    assert cron.exit_code == 0
    line = cron.output.strip()
    assert line.startswith("0 7 * * 1 ") and line.count("\n") == 0
    assert f"cd {tmp_path} && " in line and " weekly >> " in line
    assert "newsletter" in line.split("&&")[1]
    units = run("weekly", "--print-systemd").output
    assert "[Service]" in units and "Type=oneshot" in units
    assert f"WorkingDirectory={tmp_path}" in units
    assert "[Timer]" in units and "OnCalendar=Mon *-*-* 07:00:00" in units
    assert "Persistent=true" in units
    exec_start = next(x for x in units.splitlines() if x.startswith("ExecStart="))
    assert exec_start.endswith(" weekly") and "newsletter" in exec_start


def test_the_shipped_systemd_units_match_what_print_systemd_writes() -> None:
    from newsletter.weekly import systemd_units

    contrib = Path(__file__).parent.parent / "contrib" / "systemd"
    printed = systemd_units(Path("/srv/newsletter"), Path("/srv/newsletter/.venv/bin/newsletter"))

    def settings_lines(text: str) -> list[str]:
        return [x for x in text.splitlines() if x.strip() and not x.startswith("#")]

    shipped = (contrib / "newsletter-weekly.service").read_text() + (
        contrib / "newsletter-weekly.timer"
    ).read_text()
    assert settings_lines(shipped) == settings_lines(printed)


def test_an_empty_week_after_a_sent_one_holds_no_negative_issue_number(
    store: Store, settings: Settings
) -> None:
    ready_week(store, settings)
    add_subscribers(store, 2)
    sent = run_weekly(store, settings, MemorySender, week=WEEK, collect_feeds=False)
    assert sent.outcome == "sent"
    following = Week(2026, 25)
    empty = run_weekly(store, settings, MemorySender, week=following, collect_feeds=False)
    assert empty.outcome == "empty"
    draft = store.dispatches.get(str(following))
    assert draft["issue_number"] <= 0  # holds no number until it gets a signal
    assert draft["subject"] == settings.name  # not "The Brief #-2"
