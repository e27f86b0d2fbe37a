"""`newsletter signals`: the editor's annotations and the signals in store."""

from __future__ import annotations

from pathlib import Path

import click

from newsletter.annotations import import_annotations
from newsletter.cli.base import App, cli, pass_app


@cli.group()
def signals() -> None:
    """Signals: import the editor's annotations, list what is stored."""


@signals.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--dry-run", is_flag=True, help="Validate and report what would change; write nothing."
)
@pass_app
def signals_import(app: App, files: tuple[Path, ...], dry_run: bool) -> None:
    """Import annotations from Markdown (front matter), JSON or JSON Lines files.

    Every file is validated first; one bad field anywhere and nothing is written.
    """
    report = import_annotations(app.store, list(files), dry_run=dry_run)
    verb = "would be" if dry_run else ""
    click.echo(
        f"{len(report.created)} created, {len(report.updated)} updated,"
        f" {len(report.unchanged)} unchanged {verb}".rstrip()
    )


@signals.command("list")
@pass_app
def signals_list(app: App) -> None:
    """Stored signals, newest first."""
    for signal in app.store.signals.list():
        score = "-" if signal.signal_score is None else str(signal.signal_score)
        click.echo(
            f"{signal.id:>5}  {signal.published:%Y-%m-%d}  {score:>3}  "
            f"{(signal.category or '-'):<10} {signal.title[:70]}"
        )
