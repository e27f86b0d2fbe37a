"""`newsletter demo`."""

from __future__ import annotations

from pathlib import Path

import click

from newsletter.cli.base import App, cli, pass_app


@cli.command()
@click.option(
    "--preview",
    "preview_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("preview.html"),
    show_default=True,
    help="Where to write the preview HTML.",
)
@pass_app
def demo(app: App, preview_path: Path) -> None:
    """Run the whole weekly pipeline on bundled sample data, offline, with the file sender.

    Writes the database (NEWSLETTER_DB), preview.html and the outbox under the current folder.
    Running it again changes nothing: the dispatch was sent, and nobody gets a second copy.
    """
    from newsletter.demo import run_demo

    settings = app.settings.replace(sender="file")
    result = run_demo(settings, preview_path)
    click.echo(
        f"collected {len(result.collected.sources)} sample sources:"
        f" {result.collected.new} new signals"
    )
    click.echo(
        f"dispatch {result.dispatch.week} (issue {result.dispatch.issue_number}):"
        f" {len(result.dispatch.signals)} signals, status {result.dispatch.status}"
    )
    if result.delivery.already_sent:
        click.echo("already sent on an earlier run: nobody gets a second copy")
    else:
        click.echo(f"sent {result.delivery.sent} messages with the file sender")
    click.echo(f"database: {result.db.resolve()}")
    click.echo(f"preview:  {result.preview}")
    if result.archive is not None:
        click.echo(f"archive:  {result.archive}")
        click.echo(
            f"signals:  {result.archive / 'signals'} ({result.public_signals} public pages;"
            " `newsletter serve` shows them at /signals/)"
        )
    click.echo(f"outbox:   {result.outbox.resolve()}")
