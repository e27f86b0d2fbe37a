"""`newsletter send`, `newsletter weekly` and `newsletter deliveries`."""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

from newsletter.cli.base import PARTIAL, App, cli, pass_app, week_option

if TYPE_CHECKING:
    from newsletter.delivery.deliver import DeliveryReport, Progress, ProgressCallback
    from newsletter.store.deliveries import Unresolved
    from newsletter.weeks import Week

log = logging.getLogger("newsletter.send")


@contextmanager
def _stop_on_sigterm() -> Iterator[threading.Event]:
    """SIGTERM (systemd stop, kill) finishes the messages in flight, then stops cleanly."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        yield stop
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def _progress_display(quiet: bool) -> Iterator[ProgressCallback | None]:
    """A rich progress bar on a terminal; plain log lines every few seconds otherwise."""
    if quiet:
        yield None
        return
    if sys.stderr.isatty():
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as Bar

        with Bar(
            TextColumn("sending"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[failed]} failed · {task.fields[rate]:.0f}/s"),
            TimeRemainingColumn(),
            transient=True,
        ) as bar:
            task = bar.add_task("send", total=None, failed=0, rate=0.0)

            def update(p: Progress) -> None:
                bar.update(task, total=p.total, completed=p.done, failed=p.failed, rate=p.rate)

            yield update
        return
    last = [0.0]

    def line(p: Progress) -> None:
        now = time.monotonic()
        if now - last[0] < 5 and p.done < p.total:
            return
        last[0] = now
        eta = f", about {p.eta:.0f} s left" if p.eta is not None else ""
        log.info(
            "%d/%d handed over: %d sent, %d failed, %.0f/s%s",
            p.done,
            p.total,
            p.sent,
            p.failed,
            p.rate,
            eta,
        )

    yield line


def _summary(report: DeliveryReport) -> None:
    """The closing lines of a run; failures and what to do go to stderr (20 failures at most)."""
    week = report.week
    if report.already_sent:
        click.echo(f"dispatch {week} was already sent; nothing to do")
        return
    if report.dry_run:
        click.echo(
            f"dispatch {week}: {report.sent} messages built (dry run), none sent"
            f" ({report.elapsed:.1f} s)"
        )
        _variant_lines(report, "by variant (sections), as a send would go now:")
        return
    _resolution(report)
    failed = f"{report.failed} failed"
    if report.failed_temporary:
        failed += f" ({report.failed_temporary} temporarily, out of retries)"
    parts = [f"{report.sent} sent", failed]
    if report.unknown:
        parts.append(f"{report.unknown} unknown")
    if report.bounced:
        parts.append(f"{report.bounced} hard bounces marked bounced")
    if report.remaining:
        parts.append(f"{report.remaining} still queued")
    click.echo(f"dispatch {week}: " + ", ".join(parts) + f" in {report.elapsed:.1f} s")
    if len(report.variants) > 1 or report.skip_reasons:
        _variant_lines(report, "sent by variant (sections), this dispatch so far:")
    for error in report.errors[:20]:
        click.echo(f"  {error}", err=True)
    if len(report.errors) > 20:
        click.echo(f"  ... and {len(report.errors) - 20} more: `newsletter deliveries`", err=True)
    if report.unavailable:
        click.echo(f"  stopped: {report.unavailable}", err=True)
    if report.paused:
        click.echo(
            f"  paused: {report.paused}. Fix the cause, then `newsletter send --week {week}`"
            " resumes",
            err=True,
        )
    elif report.stopped:
        click.echo("  stopped before the end: run `newsletter send` again to resume", err=True)
    if report.status == "partly sent":
        unresolved_lines(report)


def _variant_lines(report: DeliveryReport, heading: str) -> None:
    lines = report.variant_lines()
    if lines:
        click.echo(heading)
        for line in lines:
            click.echo(line)


def _resolution(report: DeliveryReport) -> None:
    found = report.resolution
    if not found.found:
        return
    parts = []
    if found.accepted:
        parts.append(f"{found.accepted} found in the provider's record (sent)")
    if found.never_arrived:
        parts.append(f"{found.never_arrived} never arrived (queued again)")
    if found.repeated:
        parts.append(f"{found.repeated} repeated under their idempotency key")
    if found.left:
        parts.append(f"{found.left} still unknown")
    click.echo(f"unanswered hand-offs from an earlier run: {', '.join(parts)}")


def unresolved_lines(report: DeliveryReport) -> None:
    """What keeps a partly sent dispatch from being sent, each with the command that resolves it."""
    _unresolved_lines(report.week, report.unresolved, report.unknown_why)


def _unresolved_lines(week: str, left: Unresolved, unknown_why: str | None = None) -> None:
    click.echo(f"dispatch {week} is partly sent; not yet resolved:", err=True)
    if left.queued:
        click.echo(
            f"  {left.queued} still queued: `newsletter send --week {week}` sends them", err=True
        )
    if left.sending:
        click.echo(f"  {left.sending} being handed over by another run", err=True)
    if left.unknown:
        why = unknown_why or "their hand-off got no answer"
        click.echo(
            f"  {left.unknown} unknown ({why}): `newsletter deliveries reconcile --week {week}`"
            f" asks again; `newsletter send --week {week} --retry-unknown` sends them again,"
            " which may give some readers two copies",
            err=True,
        )
    if left.failed_temporary:
        click.echo(
            f"  {left.failed_temporary} failed temporarily and ran out of retries:"
            f" `newsletter send --week {week} --retry-failed` tries them again",
            err=True,
        )


def _exit(report: DeliveryReport) -> None:
    """0 done, 3 partly done, 1 when the sender could take nothing at all."""
    if report.ok or report.dry_run or report.already_sent:
        return
    if report.unavailable and report.sent == 0 and not report.resolution.found:
        sys.exit(1)
    sys.exit(PARTIAL)


def preflight(
    app: App,
    week: Week,
    *,
    force: bool = False,
    dry_run: bool = False,
    unapproved: bool = False,
) -> None:
    """Pre-flight checks (`newsletter check`) before anything is sent: an error stops the send
    unless --force; a dry run shows the findings and goes on."""
    from newsletter.checks.gate import PreflightError
    from newsletter.checks.gate import preflight as check_before_send
    from newsletter.checks.report import Report

    def findings(report: Report) -> None:
        for finding in report.errors + report.warnings:
            click.echo(
                f"  {finding.level}: {finding.check}: {finding.message}{finding.where}", err=True
            )

    try:
        report = check_before_send(
            app.store,
            app.settings,
            week,
            force=force,
            dry_run=dry_run,
            unapproved=unapproved,
            progress=lambda step: click.echo(f"pre-flight: {step}", err=True),
        )
    except PreflightError as exc:
        findings(exc.report)
        raise
    if report is not None:
        findings(report)


@cli.command()
@week_option
@click.option("--dry-run", is_flag=True, help="Build every message, send none.")
@click.option(
    "--unapproved",
    "force_unapproved",
    is_flag=True,
    help="Send even if the editor has not approved the dispatch.",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    metavar="N",
    help="Hand over at most N messages this run (the rest stay queued for the next run).",
)
@click.option(
    "--retry-unknown",
    is_flag=True,
    help="Also send again to those whose hand-off got no answer and could not be resolved"
    " from the provider (may duplicate).",
)
@click.option(
    "--retry-failed", is_flag=True, help="Try the deliveries that failed in earlier runs again."
)
@click.option("--force", is_flag=True, help="Send even if the pre-flight checks find errors.")
@pass_app
def send(
    app: App,
    week_text: str | None,
    dry_run: bool,
    force_unapproved: bool,
    limit: int | None,
    retry_unknown: bool,
    retry_failed: bool,
    force: bool,
) -> None:
    """Send the dispatch to every active subscriber, exactly once each.

    Every delivery is recorded before and after its hand-off, so a killed run can simply be
    started again: it first resolves what the killed run left unanswered (from the provider's
    record, or by an idempotent repeat), then sends the rest. Exit code 0 when everyone was
    reached, 3 when some deliveries failed, are unknown or still queued (the dispatch is
    "partly sent"; the output names the command for each), 1 when nothing could be sent.
    """
    from newsletter.delivery.deliver import send_dispatch
    from newsletter.delivery.senders import make_sender
    from newsletter.site.build import publish_after_send

    week = app.week(week_text)
    preflight(app, week, force=force, dry_run=dry_run, unapproved=force_unapproved)
    quiet = logging.getLogger().getEffectiveLevel() > logging.INFO
    with (
        make_sender(app.settings) as sender,
        _stop_on_sigterm() as stop,
        _progress_display(quiet or dry_run) as progress,
    ):
        report = send_dispatch(
            app.store,
            app.settings,
            sender,
            week,
            dry_run=dry_run,
            force_unapproved=force_unapproved,
            retry_unknown=retry_unknown,
            retry_failed=retry_failed,
            limit=limit,
            progress=progress,
            make_sender=lambda: make_sender(app.settings),
            stop=stop,
        )
    if not dry_run and not report.already_sent:
        publish_after_send(app.store, app.settings, week)  # logs; so before the summary
    _summary(report)
    _exit(report)


@cli.command()
@click.option(
    "--dry-run", is_flag=True, help="Collect and build, then build every message; send none."
)
@click.option("--no-collect", is_flag=True, help="Skip fetching the feeds.")
@click.option("--force", is_flag=True, help="Send even if a pre-flight check reports an error.")
@click.option("--print-cron", is_flag=True, help="Print a crontab line for this install and exit.")
@click.option(
    "--print-systemd",
    is_flag=True,
    help="Print a systemd service and timer for this install and exit.",
)
@pass_app
def weekly(
    app: App, dry_run: bool, no_collect: bool, force: bool, print_cron: bool, print_systemd: bool
) -> None:
    """What cron runs: collect, build this week's dispatch, send it once approved.

    Sends when the editor approved the dispatch, or when NEWSLETTER_AUTO_APPROVE is set. Safe
    to run twice (a sent dispatch is left alone) and after a crash (the send resumes).
    """
    from newsletter.delivery.senders import make_sender
    from newsletter.weekly import cron_line, run_weekly, systemd_units

    if print_cron or print_systemd:
        workdir, executable = Path.cwd(), _executable()
        env_file = app.env_file.resolve() if app.env_file and app.env_file.is_file() else None
        if print_cron:
            click.echo(cron_line(workdir, executable, env_file))
        if print_systemd:
            click.echo(systemd_units(workdir, executable, env_file))
        return
    quiet = logging.getLogger().getEffectiveLevel() > logging.INFO
    with _stop_on_sigterm() as stop, _progress_display(quiet or dry_run) as progress:
        report = run_weekly(
            app.store,
            app.settings,
            lambda: make_sender(app.settings),
            collect_feeds=not no_collect,
            dry_run=dry_run,
            progress=progress,
            stop=stop,
            before_send=lambda week: preflight(
                app, week, force=force, dry_run=dry_run, unapproved=dry_run
            ),
        )
    for line in report.lines:
        click.echo(line)
    if report.delivery is not None:
        _summary(report.delivery)
        _exit(report.delivery)
    if not report.ok:
        sys.exit(PARTIAL)


def _executable() -> Path:
    """This install's `newsletter` script (the one running now)."""
    script = Path(sys.argv[0])
    if script.name == "newsletter" and script.exists():
        return script.resolve()
    return Path(sys.executable).parent / "newsletter"


@cli.group(invoke_without_command=True)
@week_option
@click.option(
    "--limit", type=click.IntRange(min=0), default=50, show_default=True, help="Failures to list."
)
@click.pass_context
def deliveries(ctx: click.Context, week_text: str | None, limit: int) -> None:
    """Counts by status for the week's dispatch, and the failures with their reasons.

    Failures are final (permanent: the address or message was refused) or retryable
    (temporary, out of retries: `send --retry-failed`). `deliveries reconcile` resolves the
    unknown ones from the provider's own record.
    """
    if ctx.invoked_subcommand is not None:
        return
    from newsletter.dispatch.build import no_dispatch

    app = ctx.find_object(App)
    assert app is not None
    week = app.week(week_text)
    row = app.store.dispatches.get(str(week))
    if row is None:
        raise no_dispatch(app.store, app.settings, week)
    store = app.store.deliveries
    counts = store.counts(row["id"])
    kinds = store.failed_by_kind(row["id"])
    click.echo(f"dispatch {week} ({row['status']}): {sum(counts.values())} deliveries")
    for status, count in counts.items():
        extra = ""
        if status == "failed" and count:
            extra = (
                f"  ({kinds['permanent']} permanent: final;"
                f" {kinds['temporary']} temporary: retryable)"
            )
        click.echo(f"  {status:<8} {count}{extra}")
    _by_variant(app, row["id"])
    left = store.unresolved(row["id"])
    if row["status"] == "partly sent" or left.total:
        _unresolved_lines(str(week), left)
    failures = store.failures(row["id"], limit=limit)
    if failures:
        click.echo("failures:")
    for failure in failures:
        state = failure["status"]
        if state == "failed":
            state = f"failed ({failure['failure'] or 'permanent'})"
        click.echo(
            f"  {state:<20} {failure['email']}  (attempts {failure['attempts']})"
            f"  {failure['last_error'] or ''}"
        )
    missing = counts["failed"] + counts["unknown"] - len(failures)
    if missing > 0:
        click.echo(f"  ... and {missing} more (--limit)")


def _by_variant(app: App, dispatch_id: int) -> None:
    """Counts per variant (the sections each holds), then the skipped readers by reason."""
    from newsletter.dispatch.variants import describe

    variants = app.store.variants
    full = next((v.key for v in variants.of(dispatch_id) if v.is_full), None)
    grouped: dict[str, dict[str, int]] = {}
    for key, status, count in variants.counts(dispatch_id):
        if key is not None:
            name = describe(key, full)
        elif status == "queued":
            name = "not claimed yet (each gets the variant of their sections then)"
        else:  # a row claimed by a version before variants: it had the dispatch's own copy
            name = "the dispatch's own copy (claimed before variants were recorded)"
        grouped.setdefault(name, {})[status] = count
    reasons = variants.skip_reasons(dispatch_id)
    if not grouped and not reasons:
        return
    click.echo("by variant (sections):")
    for name, statuses in grouped.items():
        shown = ", ".join(f"{n} {status}" for status, n in statuses.items())
        click.echo(f"  {name}: {shown}")
    for reason, count in reasons[:10]:
        click.echo(f"  skipped, {reason}: {count}")
    if len(reasons) > 10:
        click.echo(
            f"  skipped for {len(reasons) - 10} other reasons: {sum(n for _, n in reasons[10:])}"
        )


@deliveries.command("reconcile")
@week_option
@pass_app
def deliveries_reconcile(app: App, week_text: str | None) -> None:
    """Resolve unknown deliveries from the provider's own record, sending nothing new.

    Asks the provider about each delivery whose hand-off got no answer (Postmark's message
    search, Mailgun's events, the file sender's outbox) or repeats its batch under the same
    idempotency key (Resend, within 23 hours); those found never to have arrived are queued
    for the next `send`. SMTP, SendGrid and SES cannot be asked. Exit code 3 while some stay
    unknown.
    """
    from newsletter.delivery.deliver import reconcile_dispatch
    from newsletter.delivery.senders import make_sender
    from newsletter.dispatch.build import no_dispatch

    week = app.week(week_text)
    if app.store.dispatches.get(str(week)) is None:
        raise no_dispatch(app.store, app.settings, week)
    with make_sender(app.settings) as sender:
        report = reconcile_dispatch(app.store, app.settings, sender, week)
    found = report.resolution
    if not found.found:
        click.echo(f"dispatch {week}: no unknown deliveries")
    else:
        _resolution(report)
    if report.status == "partly sent":
        unresolved_lines(report)
    else:
        click.echo(f"dispatch {week}: sent (nothing unresolved)")
    if report.unknown:
        sys.exit(PARTIAL)
