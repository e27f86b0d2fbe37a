"""`newsletter subscribers`."""

from __future__ import annotations

import click

from newsletter.cli.base import App, cli, pass_app
from newsletter.store.subscribers import STATUSES
from newsletter.subscriptions import add_subscriber


@cli.group()
def subscribers() -> None:
    """The people the dispatch goes to."""


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
    """Add a subscriber (pending until confirmed, unless --confirmed)."""
    result = add_subscriber(app.store, email, name=name, confirmed=confirmed)
    sub = result.subscriber
    if result.outcome == "refused":
        raise click.ClickException(f"{sub.email} is {sub.status}; not re-subscribed")
    click.echo(f"{sub.email}: {sub.status} ({result.outcome})")


@subscribers.command("list")
@click.option("--status", type=click.Choice(STATUSES), help="Only this status.")
@pass_app
def subscribers_list(app: App, status: str | None) -> None:
    """Subscribers with their status, and the counts by status."""
    for row in app.store.subscribers.list(status=status):
        click.echo(f"{row['id']:>6}  {row['status']:<12} {row['email']}  {row['name'] or ''}")
    counts = app.store.subscribers.counts()
    click.echo(", ".join(f"{n} {s}" for s, n in counts.items()))
