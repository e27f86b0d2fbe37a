"""`newsletter subscribers prefs`: a reader's sections and pause, as their preferences page
has them (the same calls, logged with the operator as the source)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import click

from newsletter.cli.base import App, pass_app

if TYPE_CHECKING:
    from newsletter.readers.preferences import Preferences


@click.command("prefs")
@click.argument("email")
@click.option(
    "--sections",
    metavar="A,B",
    help="The sections they get (by title, comma-separated); every other one is off.",
)
@click.option("--all", "everything", is_flag=True, help="Every section on again.")
@click.option(
    "--pause-weeks",
    type=click.IntRange(1, 52),
    metavar="N",
    help="Send them nothing for N weeks from now (it ends by itself).",
)
@click.option("--resume", is_flag=True, help="End their pause now.")
@pass_app
def prefs(
    app: App,
    email: str,
    sections: str | None,
    everything: bool,
    pause_weeks: int | None,
    resume: bool,
) -> None:
    """Show or change a subscriber's preferences: their sections and a pause.

    With no option, shows them. A section that appears later is on unless turned off.
    """
    from newsletter.readers import preferences as p
    from newsletter.readers import sections as titles
    from newsletter.readers.subscriptions import find

    if sections is not None and everything:
        raise click.UsageError("give --sections or --all, not both")
    if pause_weeks is not None and resume:
        raise click.UsageError("give --pause-weeks or --resume, not both")
    store, settings = app.store, app.settings
    now = time.time()
    with store.subscribers.writing():
        row = find(store, email)
        if row["status"] not in p.OPEN and (sections or everything or pause_weeks or resume):
            raise click.ClickException(f"{row['email']} is {row['status']}; nothing changed")
        known = titles.known_sections(store, settings)
        if sections is not None or everything:
            try:
                named = titles.split_titles(sections or "")
                on = known if everything else titles.resolve_titles(known, named)
            except titles.UnknownSection as exc:
                raise click.BadParameter(str(exc), param_hint="--sections") from None
            if not on:
                raise click.BadParameter("name at least one section", param_hint="--sections")
            p.choose_sections(store, row["id"], on, known, actor="cli")
        if pause_weeks is not None:
            p.pause(store, row["id"], pause_weeks, actor="cli", now=now)
        elif resume:
            p.resume(store, row["id"], actor="cli", now=now)
        row = find(store, email)
    _show(p.preferences_of(store, settings, row), now)


def _show(prefs: Preferences, now: float) -> None:
    from newsletter.readers.preferences import describe_pause

    click.echo(f"{'email:':<17}{prefs.email} ({prefs.status})")
    for choice in prefs.sections:
        mark = "on " if choice.on else "off"
        click.echo(f"  [{mark}] {choice.title}{'  (new)' if choice.new else ''}")
    click.echo(f"{'pause:':<17}{describe_pause(prefs.paused_until, now)}")
    if prefs.pending_email:
        click.echo(f"{'new address:':<17}{prefs.pending_email} (waiting for its confirmation)")
