"""`newsletter weekly`: the one job cron or a systemd timer runs each week.

Collect, build this week's dispatch, and send it once it is approved (or auto-approved). Each
step looks at what is already done first, so a second run does nothing harmful and a run after
a crash resumes the send where it stopped. A partly sent dispatch is resumed like `send` does:
what can be resolved is, and what cannot is reported with the command that resolves it.
"""

from __future__ import annotations

import shlex
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from newsletter.delivery.deliver import DeliveryReport, ProgressCallback, send_dispatch
from newsletter.delivery.senders.base import Sender
from newsletter.dispatch.build import approve, build_dispatch, current_week, load_dispatch
from newsletter.engagement.recorder import maintain
from newsletter.settings import Settings
from newsletter.signals.collect import CollectReport, collect
from newsletter.site.build import publish_after_send
from newsletter.store import Store
from newsletter.weeks import Week


@dataclass
class WeeklyReport:
    week: str
    outcome: str = ""  # sent | partly-sent | already-sent | awaiting-approval | empty | dry-run
    collected: CollectReport | None = None
    delivery: DeliveryReport | None = None
    lines: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        feeds_ok = self.collected is None or not self.collected.failed
        return feeds_ok and (self.delivery is None or self.delivery.ok)


def run_weekly(
    store: Store,
    settings: Settings,
    make_sender: Callable[[], Sender],
    *,
    week: Week | None = None,
    now: datetime | None = None,
    collect_feeds: bool = True,
    dry_run: bool = False,
    progress: ProgressCallback | None = None,
    stop: threading.Event | None = None,
    before_send: Callable[[Week], object] | None = None,
) -> WeeklyReport:
    """Collect, build, send once approved. `before_send` (the pre-flight gate) runs right before
    the send and stops it by raising."""
    week = week or current_week(settings, now)
    report = WeeklyReport(str(week))
    maintain(store, settings)  # engagement: classify queued clicks, fold raw rows past retention
    row = store.dispatches.get(str(week))
    if row is not None and row["status"] == "sent":
        report.outcome = "already-sent"
        report.lines.append(f"dispatch {week} was already sent; nothing to do")
        return report
    if collect_feeds:
        report.collected = collect(store)
        failed = len(report.collected.failed)
        report.lines.append(
            f"collected: {report.collected.new} new, {report.collected.updated} updated"
            + (f", {failed} sources failed" if failed else "")
        )
    status = row["status"] if row else None
    if status in (None, "draft"):
        # an approved or half-sent dispatch is never rebuilt: the editor approved that content
        build_dispatch(store, settings, week)
    dispatch = load_dispatch(store, settings, week)
    assert dispatch is not None
    if not dispatch.signals:
        report.outcome = "empty"
        report.lines.append(f"dispatch {week}: no eligible signals this week; nothing to send")
        return report
    if dispatch.status == "draft":
        if not settings.auto_approve:
            report.outcome = "awaiting-approval"
            report.lines.append(
                f"dispatch {week} is built and waits for the editor: `newsletter dispatch"
                f" approve --week {week}` (or set NEWSLETTER_AUTO_APPROVE=true)"
            )
            return report
        if not dry_run:
            approve(store, settings, week)
            report.lines.append(f"dispatch {week} approved automatically (NEWSLETTER_AUTO_APPROVE)")
    if before_send is not None:
        before_send(week)
    with make_sender() as sender:
        report.delivery = send_dispatch(
            store,
            settings,
            sender,
            week,
            dry_run=dry_run,
            force_unapproved=dry_run,
            progress=progress,
            stop=stop,
            make_sender=make_sender,
        )
    if dry_run:
        report.outcome = "dry-run"
    else:
        report.outcome = "sent" if report.delivery.status == "sent" else "partly-sent"
    if not dry_run:
        folder = publish_after_send(store, settings, week)
        if folder is not None:
            report.lines.append(f"web archive rebuilt: {folder}")
    return report


def _command(workdir: Path, executable: Path, env_file: Path | None) -> str:
    args = [str(executable)]
    if env_file is not None:
        args += ["--env-file", str(env_file)]
    return f"cd {shlex.quote(str(workdir))} && " + " ".join(shlex.quote(a) for a in args)


def cron_line(workdir: Path, executable: Path, env_file: Path | None = None) -> str:
    """A crontab line: Mondays at 07:00, output appended to weekly.log in the install."""
    log = shlex.quote(str(workdir / "weekly.log"))
    return f"0 7 * * 1  {_command(workdir, executable, env_file)} weekly >> {log} 2>&1"


def systemd_units(workdir: Path, executable: Path, env_file: Path | None = None) -> str:
    """A oneshot service and a timer (Mondays 07:00; Persistent runs a missed week at boot)."""
    env = f" --env-file {shlex.quote(str(env_file))}" if env_file else ""
    return f"""\
# /etc/systemd/system/newsletter-weekly.service
[Unit]
Description=newsletter: collect, build and send the weekly dispatch
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
WorkingDirectory={workdir}
ExecStart={executable}{env} weekly
# SIGTERM lets the messages in flight finish and be recorded before the process exits
KillSignal=SIGTERM
TimeoutStopSec=300

# /etc/systemd/system/newsletter-weekly.timer
[Unit]
Description=Run newsletter weekly every Monday morning

[Timer]
OnCalendar=Mon *-*-* 07:00:00
Persistent=true
RandomizedDelaySec=300

[Install]
WantedBy=timers.target
"""
