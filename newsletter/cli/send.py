"""`newsletter send`."""

from __future__ import annotations

import sys

import click

from newsletter.cli.base import PARTIAL, App, cli, pass_app, week_option
from newsletter.deliver import send_dispatch
from newsletter.senders import make_sender


@cli.command()
@week_option
@click.option("--dry-run", is_flag=True, help="Build every message, send none.")
@click.option("--force", "force_unapproved", is_flag=True, help="Send even if not approved.")
@click.option(
    "--retry-unknown",
    is_flag=True,
    help="Also send to those whose hand-off was in flight when a run was killed (may duplicate).",
)
@pass_app
def send(
    app: App, week_text: str | None, dry_run: bool, force_unapproved: bool, retry_unknown: bool
) -> None:
    """Send the dispatch to every active subscriber, exactly once each.

    Exit code 0 when everyone got it, 3 when some deliveries failed or are unknown.
    """
    week = app.week(week_text)
    with make_sender(app.settings) as sender:
        report = send_dispatch(
            app.store,
            app.settings,
            sender,
            week,
            dry_run=dry_run,
            force_unapproved=force_unapproved,
            retry_unknown=retry_unknown,
        )
    if report.already_sent:
        click.echo(f"dispatch {week} was already sent; nothing to do")
        return
    verb = "built (dry run)" if dry_run else "sent"
    click.echo(f"dispatch {week}: {report.sent} {verb}, {report.failed} failed")
    for error in report.errors[:20]:
        click.echo(f"  {error}", err=True)
    if not report.ok:
        sys.exit(PARTIAL)
