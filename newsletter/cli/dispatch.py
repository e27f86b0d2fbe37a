"""`newsletter dispatch` and `newsletter preview`."""

from __future__ import annotations

from pathlib import Path

import click

from newsletter.cli.base import App, cli, pass_app, week_option
from newsletter.dispatch import approve, build_dispatch, load_dispatch
from newsletter.errors import DispatchError
from newsletter.preview import write_preview


@cli.group()
def dispatch() -> None:
    """The week's dispatch: build, show, approve."""


@dispatch.command("build")
@week_option
@pass_app
def dispatch_build(app: App, week_text: str | None) -> None:
    """Select the week's strongest signals into a draft (again: refresh the draft)."""
    week = app.week(week_text)
    built = build_dispatch(app.store, app.settings, week)
    if not built.signals:
        click.echo(f"{week}: no eligible signals this week; nothing will be sent")
        return
    click.echo(f"dispatch {week} (issue {built.issue_number}): {len(built.signals)} signals")
    click.echo(f"subject: {built.subject}")


@dispatch.command("show")
@week_option
@pass_app
def dispatch_show(app: App, week_text: str | None) -> None:
    """The dispatch's status, subject and signals by section."""
    week = app.week(week_text)
    shown = load_dispatch(app.store, app.settings, week)
    if shown is None:
        raise DispatchError(
            f"no dispatch for {week}: run `newsletter dispatch build --week {week}`"
        )
    click.echo(f"dispatch {shown.week} · issue {shown.issue_number} · {shown.status}")
    click.echo(f"subject:   {shown.subject}")
    click.echo(f"preheader: {shown.preheader}")
    for section in shown.sections:
        click.echo(f"\n[{section.title}]")
        for signal in section.signals:
            click.echo(f"  {signal.id:>5}  {signal.signal_score or '-':>3}  {signal.title}")


@dispatch.command("approve")
@week_option
@pass_app
def dispatch_approve(app: App, week_text: str | None) -> None:
    """Mark the draft ready to send (`weekly` sends only approved dispatches)."""
    approved = approve(app.store, app.settings, app.week(week_text))
    click.echo(f"dispatch {approved.week} approved: {len(approved.signals)} signals")


@cli.command()
@week_option
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("preview.html"),
    show_default=True,
    help="Where to write the HTML.",
)
@pass_app
def preview(app: App, week_text: str | None, output: Path) -> None:
    """Write the dispatch's HTML as a sample reader will see it."""
    path = write_preview(app.store, app.settings, app.week(week_text), output)
    click.echo(f"preview: {path}")
