"""`newsletter init`, `collect` and `sources`."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from newsletter.cli.base import PARTIAL, App, cli, pass_app
from newsletter.collect import collect as run_collect
from newsletter.sources_file import read_sources_file


@cli.command()
@pass_app
def init(app: App) -> None:
    """Create the database (or migrate an older one in place)."""
    store = app.store
    click.echo(f"database ready: {app.settings.db} (schema {store.schema_version()[-1]})")


@cli.command()
@pass_app
def collect(app: App) -> None:
    """Fetch every enabled source and store its items as signals.

    A broken source is reported and skipped; the others still land. Exit code 3 when any failed.
    """
    report = run_collect(app.store)
    for result in report.sources:
        if result.error:
            click.echo(f"✗ {result.name}: {result.error}", err=True)
        else:
            click.echo(
                f"✓ {result.name}: {result.new} new, {result.updated} updated,"
                f" {result.unchanged} unchanged"
            )
    click.echo(
        f"{len(report.sources)} sources, {report.new} new signals,"
        f" {report.updated} updated, {len(report.failed)} failed"
    )
    if report.failed:
        sys.exit(PARTIAL)


@cli.group()
def sources() -> None:
    """The feeds to collect."""


@sources.command("add")
@click.argument("name")
@click.argument("url")
@click.option("--category", help="Section of the dispatch for this source's signals.")
@click.option("--label", help='Shown as "Source:" and "Read at …" (default: the feed title).')
@pass_app
def sources_add(app: App, name: str, url: str, category: str | None, label: str | None) -> None:
    """Add a source (an http(s) feed URL, a file: URL or a path), or update one by NAME."""
    app.store.sources.add(name, url, category=category, label=label)
    click.echo(f"source {name}: {url}")


@sources.command("load")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@pass_app
def sources_load(app: App, path: Path) -> None:
    """Add or update every source of a TOML sources file ([[source]] tables)."""
    specs = read_sources_file(path)
    with app.store.transaction():
        for spec in specs:
            app.store.sources.add(
                spec.name, spec.url, category=spec.category, label=spec.label, enabled=spec.enabled
            )
    click.echo(f"{len(specs)} sources loaded from {path}")


@sources.command("list")
@pass_app
def sources_list(app: App) -> None:
    """Sources with their last fetch, status, item count and consecutive errors."""
    rows = app.store.sources.list()
    if not rows:
        click.echo("no sources yet: add one with `newsletter sources add NAME URL`")
        return
    for row in rows:
        state = "enabled" if row["enabled"] else "disabled"
        click.echo(
            f"{row['name']:<20} {state:<8} {row['last_status'] or 'never':<16}"
            f" {row['item_count']:>5} items  {row['consecutive_errors']} errors"
            f"  {row['last_fetched_at'] or '-'}  {row['url']}"
        )
