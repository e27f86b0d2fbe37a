"""`newsletter subscribers`: the same rules as the sign-up form, for the operator."""

from __future__ import annotations

import io
import json
import sys
import time
from pathlib import Path

import click

from newsletter.cli.base import PARTIAL, App, cli, pass_app
from newsletter.cli.table import table
from newsletter.store.subscribers import STATUSES


@cli.group(
    lazy={
        "prefs": (
            "newsletter.cli.preferences:prefs",
            "Show or change a subscriber's preferences: their sections and a pause.",
        ),
    }
)
def subscribers() -> None:
    """The people the dispatch goes to."""


def _mail_notices(app: App) -> None:
    """Send the confirmation mails just queued, with any an earlier command or a stopped
    `serve` left owed, through the configured sender (the same path `serve` uses)."""
    counts = app.store.notices.counts()
    if not counts["queued"] and not counts["unknown"]:
        return
    from newsletter.delivery.senders import make_sender
    from newsletter.readers.notices import send_owed_notices

    with (
        make_sender(app.settings) as sender,
        click.progressbar(
            length=counts["queued"], label="confirmation mails", file=sys.stderr
        ) as bar,
    ):
        report = send_owed_notices(app.store, app.settings, sender, progress=bar.update)
    click.echo(f"{report.sent} confirmation mail(s) sent")
    for error in report.errors:
        click.echo(f"not sent: {error}", err=True)
    if report.waiting:
        click.echo(
            f"{report.waiting} could not be sent yet and wait for a retry: `newsletter serve`"
            " or the next `subscribers add` sends them",
            err=True,
        )
    if report.stopped:
        click.echo(f"stopped: {report.stopped}", err=True)
    if report.errors or report.waiting or report.stopped:
        sys.exit(PARTIAL)


@subscribers.command("add")
@click.argument("email")
@click.option("--name", help="Display name (used in the greeting and To:).")
@click.option(
    "--confirmed",
    is_flag=True,
    help="Consent was already given elsewhere: make them active without a confirmation mail.",
)
@pass_app
def subscribers_add(app: App, email: str, name: str | None, confirmed: bool) -> None:
    """Add a subscriber: pending, with a confirmation mail, unless --confirmed."""
    from newsletter.readers.subscriptions import add_subscriber

    result = add_subscriber(app.store, email, name=name, confirmed=confirmed)
    sub = result.subscriber
    if result.outcome == "refused":
        raise click.ClickException(f"{sub.email} is {sub.status}; not re-subscribed")
    click.echo(f"{sub.email}: {sub.status} ({result.outcome})")
    _mail_notices(app)


@subscribers.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--email-column", default="email", show_default=True, help="Column of addresses.")
@click.option("--name-column", default="name", show_default=True, help="Column of names.")
@click.option(
    "--sections-column",
    default="sections",
    show_default=True,
    help="Column of the sections each reader takes (titles, `,` or `;` between; empty: all).",
)
@click.option(
    "--confirmed", is_flag=True, help="Consent was given elsewhere: active, no confirmation mail."
)
@click.option("--dry-run", is_flag=True, help="Report what would happen; change and send nothing.")
@pass_app
def subscribers_import(
    app: App,
    file: Path,
    email_column: str,
    name_column: str,
    sections_column: str,
    confirmed: bool,
    dry_run: bool,
) -> None:
    """Import a CSV file. Never re-subscribes anyone who unsubscribed, bounced or complained."""
    from newsletter.readers.sections import known_sections
    from newsletter.readers.subscriptions import import_csv

    report = import_csv(
        app.store,
        file,
        email_column=email_column,
        name_column=name_column,
        sections_column=sections_column,
        known_sections=known_sections(app.store, app.settings),
        confirmed=confirmed,
        dry_run=dry_run,
    )
    for line, address, why in report.skipped:
        click.echo(f"line {line}: skipped {address}: {why}")
    for line, given, why in report.invalid:
        click.echo(f"line {line}: invalid {given!r}: {why}")
    prefix = "dry run, would have: " if dry_run else ""
    click.echo(
        f"{prefix}{len(report.added)} added, {len(report.updated)} updated, "
        f"{len(report.skipped)} skipped, {len(report.invalid)} invalid"
    )
    if not dry_run:
        _mail_notices(app)


@subscribers.command("export")
@click.option("--status", type=click.Choice(STATUSES), help="Only this status.")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File (default: stdout).",
)
@pass_app
def subscribers_export(app: App, status: str | None, output: Path | None) -> None:
    """Write subscribers as CSV, with their consent records."""
    from newsletter.private_files import open_file
    from newsletter.readers.sections import known_sections
    from newsletter.readers.subscriptions import export_csv

    known = known_sections(app.store, app.settings)
    if output is None:
        export_csv(app.store, sys.stdout, status=status, known_sections=known)
        return
    partial = output.with_name(output.name + ".part")
    # 0600: addresses, names and consent records of real people
    with io.TextIOWrapper(open_file(partial, "wb"), encoding="utf-8", newline="") as handle:
        count = export_csv(app.store, handle, status=status, known_sections=known)
    partial.replace(output)
    click.echo(f"{count} subscriber(s) written to {output}", err=True)


@subscribers.command("list")
@click.option("--status", type=click.Choice(STATUSES), help="Only this status.")
@click.option("--search", help="Only addresses or names containing this text.")
@click.option("--since", metavar="YYYY-MM-DD", help="Only those who signed up on or after.")
@click.option("--limit", type=click.IntRange(1), help="At most this many rows.")
@pass_app
def subscribers_list(
    app: App, status: str | None, search: str | None, since: str | None, limit: int | None
) -> None:
    """Subscribers with their status, and the counts by status."""
    rows = app.store.subscribers.list(status=status, search=search, since=since, limit=limit)
    if rows:
        lines = table(
            ("ID", "STATUS", "EMAIL", "NAME", "SINCE"),
            (
                (r["id"], r["status"], r["email"], r["name"] or "", (r["created_at"] or "")[:10])
                for r in rows
            ),
            right={0},
        )
        click.echo("\n".join(lines))
    counts = app.store.subscribers.counts()
    click.echo(f"{len(rows)} shown; " + ", ".join(f"{n} {s}" for s, n in counts.items()))


@subscribers.command("show")
@click.argument("email")
@pass_app
def subscribers_show(app: App, email: str) -> None:
    """One subscriber: status, consent record and the history of changes."""
    from newsletter.readers.preferences import describe_pause, preferences_of
    from newsletter.readers.subscriptions import find

    row = find(app.store, email)
    for key in ("email", "name", "status", "created_at", "confirmed_at", "unsubscribed_at"):
        click.echo(f"{key + ':':<17}{row[key] or ''}")
    click.echo(f"{'consent:':<17}{row['consent_text'] or ''}")
    click.echo(f"{'consent from:':<17}{row['consent_ip'] or ''} {row['consent_form'] or ''}")
    prefs = preferences_of(app.store, app.settings, row)
    off = [c.title for c in prefs.sections if not c.on]
    taken = ", ".join(prefs.taken) or "none"
    click.echo(f"{'sections:':<17}{taken}" + (f" (off: {', '.join(off)})" if off else " (all)"))
    click.echo(f"{'pause:':<17}{describe_pause(prefs.paused_until, time.time())}")
    if prefs.pending_email:
        click.echo(f"{'new address:':<17}{prefs.pending_email} (waiting for its confirmation)")
    click.echo("history:")
    for event in app.store.subscribers.events(row["id"]):
        detail = json.loads(event["detail"]) if event["detail"] else {}
        extra = " ".join(f"{k}={v}" for k, v in detail.items() if k != "consent")
        click.echo(f"  {event['at']}  {event['kind']:<28} by {event['actor']}  {extra}".rstrip())


@subscribers.command("remove")
@click.argument("email")
@pass_app
def subscribers_remove(app: App, email: str) -> None:
    """Unsubscribe an address (kept, so it is never mailed or imported again)."""
    from newsletter.readers.subscriptions import remove

    before = remove(app.store, email)
    if before in ("pending", "active"):
        click.echo(f"{email}: unsubscribed")
    else:
        click.echo(f"{email}: already {before}; nothing changed")


@subscribers.command("erase")
@click.argument("email")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_app
def subscribers_erase(app: App, email: str, yes: bool) -> None:
    """Delete everything about a person (right to erasure), keeping only a hash of the address
    so that no import re-subscribes them."""
    from newsletter.readers.subscriptions import erase, find

    find(app.store, email)
    if not yes:
        click.confirm(f"Erase {email} and their history? This cannot be undone", abort=True)
    erase(app.store, email)
    click.echo(f"{email}: erased")


@subscribers.command("reset")
@click.argument("email")
@pass_app
def subscribers_reset(app: App, email: str) -> None:
    """Clear a bounce or complaint so the address is mailed again (operator's decision)."""
    from newsletter.readers.subscriptions import reset

    status = reset(app.store, email)
    click.echo(f"{email}: {status}")


@subscribers.command("rotate-tokens")
@click.argument("email", required=False)
@click.option("--all", "everyone", is_flag=True, help="Rotate every subscriber's links.")
@pass_app
def subscribers_rotate_tokens(app: App, email: str | None, everyone: bool) -> None:
    """Invalidate every link already sent to EMAIL (or to everyone with --all).

    Confirmation and unsubscribe links in mail already sent stop working (a forwarded issue, a
    leaked link); the next mail carries new ones.
    """
    from newsletter.readers.subscriptions import rotate_tokens

    if bool(email) == everyone:
        raise click.UsageError("give one EMAIL or --all")
    count = rotate_tokens(app.store, None if everyone else email)
    click.echo(f"{count} subscriber(s): earlier links no longer work")
