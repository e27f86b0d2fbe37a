"""`newsletter init`, `collect` and `sources`."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from newsletter.cli.base import PARTIAL, App, cli, pass_app
from newsletter.cli.table import table
from newsletter.errors import FeedError

if TYPE_CHECKING:
    from newsletter.signals.collect import SourceResult


@cli.command()
@pass_app
def init(app: App) -> None:
    """Create the database (or migrate an older one in place)."""
    store = app.store
    click.echo(f"database ready: {app.settings.db} (schema {store.schema_version()[-1]})")


STREAK_HINT = 3  # consecutive failures before `collect` suggests disabling a source


def _line(result: SourceResult) -> str:
    if result.error:
        streak = result.failures_in_a_row
        hint = (
            f" (failed {streak} runs in a row: `newsletter sources disable {result.name}`"
            " stops trying)"
            if streak >= STREAK_HINT
            else ""
        )
        return f"✗ {result.name}: {result.error}{hint}"
    if result.status in ("not-modified", "unchanged"):
        why = "304 Not Modified" if result.status == "not-modified" else "same content as last time"
        return f"= {result.name}: unchanged ({why})"
    return (
        f"✓ {result.name}: {result.new} new, {result.updated} updated, {result.unchanged} unchanged"
    )


@cli.command()
@click.option(
    "--source",
    "names",
    multiple=True,
    metavar="NAME",
    help="Collect only this source (repeatable; disabled ones too).",
)
@pass_app
def collect(app: App, names: tuple[str, ...]) -> None:
    """Fetch every enabled source and store its items as signals.

    Sources are fetched concurrently; each line appears as its source lands. A broken source
    is reported with its reason and skipped; the others still land. Exit code 3 when any failed.
    """

    from newsletter.signals.collect import collect as run_collect
    from newsletter.signals.fetch import policy_from

    def progress(result: SourceResult) -> None:
        click.echo(_line(result), err=bool(result.error))
        for warning in result.warnings:
            click.echo(f"  ! {warning}", err=True)

    started = datetime.now(UTC)
    report = run_collect(
        app.store,
        names=list(names) or None,
        progress=progress,
        policy=policy_from(app.settings),
        now=started,
    )
    if not report.sources:
        click.echo("no enabled sources: add one with `newsletter sources add NAME URL`")
        return
    click.echo(
        f"{len(report.sources)} sources, {report.new} new signals,"
        f" {report.updated} updated, {len(report.failed)} failed"
    )
    if report.new:
        _rank_new(app, started)
    if report.failed:
        sys.exit(PARTIAL)


def _rank_new(app: App, since: datetime) -> None:
    """How many of the new signals the ranker expects this editor to score above the dispatch's
    minimum (plain Python: no scikit-learn at collection)."""
    from newsletter.editorial.ranking import load_ranker

    ranker = load_ranker(app.store)
    if ranker is None:
        return
    new = app.store.signals.list(seen_since=since)
    floor = app.settings.min_score
    above = sum(ranker.predict(s) >= floor for s in new)
    click.echo(
        f"{above} of {len(new)} new signals rank above the dispatch minimum"
        f" (predicted score ≥ {floor}, ranker v{ranker.version});"
        " best first: `newsletter signals list --unannotated --rank`"
    )


@cli.group()
def sources() -> None:
    """The feeds to collect: add, list, enable, disable, remove, or load from a file."""


@sources.command("add")
@click.argument("name")
@click.argument("url")
@click.option("--category", help="Section of the dispatch for this source's signals.")
@click.option("--label", help='Shown as "Source:" and "Read at …" (default: the feed title).')
@pass_app
def sources_add(app: App, name: str, url: str, category: str | None, label: str | None) -> None:
    """Add a source (an http(s) feed URL, a file: URL or a path), or update one by NAME."""
    from newsletter.signals.sources_file import check_source

    check_source(name, url, category, label)
    existed = app.store.sources.get(name) is not None
    app.store.sources.add(name, url, category=category, label=label)
    click.echo(f"source {name} {'updated' if existed else 'added'}: {url}")


@sources.command("load")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--prune", is_flag=True, help="Also remove sources that the file no longer lists.")
@pass_app
def sources_load(app: App, path: Path, prune: bool) -> None:
    """Add or update every source of a TOML ([[source]]) or YAML (sources:) file.

    The whole file is checked first; one bad entry and nothing changes.
    """
    from newsletter.signals.sources_file import load_sources

    report = load_sources(app.store, path, prune=prune)
    click.echo(
        f"{path}: {len(report.added)} added, {len(report.updated)} updated"
        + (f", {len(report.removed)} removed" if prune else "")
    )


@sources.command("list")
@pass_app
def sources_list(app: App) -> None:
    """Sources with their last fetch, status, item count and consecutive errors."""
    rows = app.store.sources.list()
    if not rows:
        click.echo("no sources yet: add one with `newsletter sources add NAME URL`")
        return
    counts = app.store.sources.signal_counts()
    lines = table(
        ("NAME", "STATE", "LAST FETCH (UTC)", "STATUS", "ITEMS", "SIGNALS", "ERRORS", "URL"),
        (
            (
                row["name"],
                "enabled" if row["enabled"] else "disabled",
                (row["last_fetched_at"] or "never")[:19].replace("T", " "),
                row["last_status"] or "-",
                row["item_count"],
                counts.get(row["id"], 0),
                row["consecutive_errors"],
                row["url"],
            )
            for row in rows
        ),
        right={4, 5, 6},
    )
    click.echo(lines[0])
    indent = " " * lines[0].index("STATE")  # under the row's state, like a note on it
    for row, line in zip(rows, lines[1:], strict=True):
        click.echo(line)
        if row["last_error"] and row["last_status"] == "error":
            click.echo(f"{indent}last error: {row['last_error']}")


def _toggle(app: App, names: tuple[str, ...], enabled: bool) -> None:
    with app.store.transaction():
        for name in names:
            if not app.store.sources.set_enabled(name, enabled):
                raise FeedError(f"no source named {name!r} (see `newsletter sources list`)")
    click.echo(f"{'enabled' if enabled else 'disabled'}: {', '.join(names)}")


@sources.command("enable")
@click.argument("names", nargs=-1, required=True)
@pass_app
def sources_enable(app: App, names: tuple[str, ...]) -> None:
    """Collect these sources again."""
    _toggle(app, names, True)


@sources.command("disable")
@click.argument("names", nargs=-1, required=True)
@pass_app
def sources_disable(app: App, names: tuple[str, ...]) -> None:
    """Stop collecting these sources; their signals stay."""
    _toggle(app, names, False)


@sources.command("remove")
@click.argument("names", nargs=-1, required=True)
@pass_app
def sources_remove(app: App, names: tuple[str, ...]) -> None:
    """Forget these sources; signals already collected from them stay."""
    with app.store.transaction():
        for name in names:
            if not app.store.sources.remove(name):
                raise FeedError(f"no source named {name!r} (see `newsletter sources list`)")
    click.echo(f"removed: {', '.join(names)}")
