"""`newsletter signals`: the editor's annotations and the signals in store."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from newsletter.cli.base import App, cli, pass_app, week_option
from newsletter.errors import AnnotationError, NewsletterError
from newsletter.signals.annotations import (
    ImportReport,
    edit_text,
    export_signals,
    import_annotations,
    markdown_name,
    to_markdown,
    to_record,
)


@cli.group()
def signals() -> None:
    """Signals: import and export the editor's annotations, list, show and edit them."""


def _print_report(report: ImportReport) -> None:
    for change in report.changes:
        if change.action == "unchanged":
            continue
        what = f"#{change.signal_id} " if change.signal_id else ""
        detail = f" ({', '.join(change.fields)})" if change.fields else ""
        verb = f"would be {change.action}" if report.dry_run else change.action
        click.echo(f"{verb}: {what}{change.title[:60]}{detail}  [{change.where}]")
    suffix = " (dry run: nothing written)" if report.dry_run else ""
    click.echo(
        f"{len(report.created)} created, {len(report.updated)} updated,"
        f" {len(report.unchanged)} unchanged{suffix}"
    )


@signals.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--dry-run", is_flag=True, help="Validate and report what would change; write nothing."
)
@pass_app
def signals_import(app: App, files: tuple[Path, ...], dry_run: bool) -> None:
    """Import annotations from Markdown (front matter), JSON or JSON Lines files.

    A record matches a stored signal by url, guid or arxiv_id, or creates one (then title and
    url are needed). Every file is validated first; one bad field anywhere and nothing is
    written. Folders are read for their .md, .json and .jsonl files.
    """
    paths: list[Path] = []
    for path in files:
        if path.is_dir():
            paths.extend(
                sorted(p for p in path.iterdir() if p.suffix.lower() in (".md", ".json", ".jsonl"))
            )
        else:
            paths.append(path)
    _print_report(import_annotations(app.store, paths, dry_run=dry_run))


@signals.command("list")
@week_option
@click.option("--category", help="Only this category (any case).")
@click.option("--unannotated", is_flag=True, help="Only signals the editor has not annotated.")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many, newest first.")
@pass_app
def signals_list(
    app: App, week_text: str | None, category: str | None, unannotated: bool, limit: int | None
) -> None:
    """Stored signals, newest first, as a table (all weeks unless --week is given)."""
    filters: dict[str, object] = {"category": category, "unannotated": unannotated}
    if week_text is not None:
        start, end = app.week(week_text).bounds(app.settings.timezone)
        filters.update(start=start, end=end)
    found = app.store.signals.list(**filters)[:limit]
    if not found:
        click.echo("no signals match")
        return
    width = max(2, *(len(str(s.id)) for s in found))
    click.echo(
        f"{'ID':>{width}}  {'PUBLISHED':<10}  {'SCORE':>5}  {'CATEGORY':<10}  {'SOURCE':<16}  TITLE"
    )
    for signal in found:
        score = "-" if signal.signal_score is None else str(signal.signal_score)
        tz = app.settings.timezone
        click.echo(
            f"{signal.id:>{width}}  {signal.published.astimezone(tz):%Y-%m-%d}  {score:>5}"
            f"  {(signal.category or '-')[:10]:<10}  {(signal.source_label or '-')[:16]:<16}"
            f"  {signal.title[:80]}"
        )
    click.echo(f"{len(found)} signals")


def _row(app: App, signal_id: int) -> dict[str, object]:
    row = app.store.signals.row(signal_id)
    if row is None:
        raise AnnotationError(f"no signal with id {signal_id} (see `newsletter signals list`)")
    return row


@signals.command("show")
@click.argument("signal_id", metavar="ID", type=int)
@pass_app
def signals_show(app: App, signal_id: int) -> None:
    """Every field of one signal, in the order of the annotation files."""
    row = _row(app, signal_id)
    click.echo(f"id: {row['id']}")
    for name, value in to_record(row).items():
        if isinstance(value, list):
            click.echo(f"{name}:")
            for phrase in value:
                click.echo(f"  - {phrase}")
        elif isinstance(value, str) and "\n" in value:
            click.echo(f"{name}:")
            click.echo("\n".join(f"  {line}" for line in value.splitlines()))
        else:
            click.echo(f"{name}: {value}")
    for name in ("first_seen", "updated_at", "annotated_at"):
        click.echo(f"{name}: {row[name] or '-'}")
    page = f"{app.settings.public_url}/signals/{row['slug']}/"
    public = app.store.stream.is_public(signal_id)
    click.echo(f"page: {page if public else 'not public'} ({row['publication'] or 'automatic'})")


@signals.command("edit")
@click.argument("signal_id", metavar="ID", type=int)
@pass_app
def signals_edit(app: App, signal_id: int) -> None:
    """Open one signal's annotation form in $EDITOR and import it back when saved.

    Deleting a field from the form clears it. An invalid form is reported and offered for
    another edit; nothing is written until it is valid.
    """
    text = to_markdown(_row(app, signal_id))
    while True:
        edited = click.edit(text, extension=".md", require_save=True)
        if edited is None or edited == text:
            click.echo("no changes")
            return
        try:
            report = edit_text(app.store, signal_id, edited, where=f"signal {signal_id}")
        except NewsletterError as exc:
            click.echo(f"Error: {exc}", err=True)
            if not sys.stdin.isatty() or not click.confirm("Edit again?", default=True):
                raise click.exceptions.Exit(1) from None
            text = edited
            continue
        _print_report(report)
        return


@signals.command("export")
@week_option
@click.option("--category", help="Only this category (any case).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["md", "jsonl", "json"]),
    default="jsonl",
    show_default=True,
    help="md: one Markdown file a signal (needs --output DIR).",
)
@click.option(
    "--output",
    type=click.Path(path_type=Path),
    help="File (json, jsonl) or folder (md); default: standard output.",
)
@pass_app
def signals_export(
    app: App, week_text: str | None, category: str | None, fmt: str, output: Path | None
) -> None:
    """Export signals in the import's own format; importing the export changes nothing."""
    filters: dict[str, object] = {"category": category}
    if week_text is not None:
        start, end = app.week(week_text).bounds(app.settings.timezone)
        filters.update(start=start, end=end)
    found = [app.store.signals.row(s.id) for s in app.store.signals.list(**filters)]
    rows = [r for r in reversed(found) if r is not None]
    if fmt == "md":
        if output is None:
            raise click.UsageError("--format md writes one file a signal: give --output DIR")
        if output.exists() and not output.is_dir():
            raise click.UsageError(f"--output {output}: is a file, not a folder")
        output.mkdir(parents=True, exist_ok=True)
        for row in rows:
            (output / markdown_name(row)).write_text(to_markdown(row), encoding="utf-8")
        click.echo(f"{len(rows)} signals written to {output}/", err=True)
        return
    text = export_signals(rows, fmt)
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        click.echo(f"{len(rows)} signals written to {output}", err=True)


signal_ids = click.argument("signal_ids", metavar="ID...", nargs=-1, required=True, type=int)


def _publish(app: App, ids: tuple[int, ...], public: bool) -> None:
    from newsletter.site.build import rebuild
    from newsletter.site.publish import set_published

    for done in set_published(app.store, app.settings, ids, public=public):
        where = done.url if done.public else "no public page"
        click.echo(f"#{done.signal.id} {done.signal.title[:60]}: {where}")
    folder = app.settings.web_archive_dir
    if (folder / "index.html").is_file() and rebuild(app.store, app.settings):
        click.echo(f"static site rebuilt: {folder}")


@signals.command("publish")
@signal_ids
@pass_app
def signals_publish(app: App, signal_ids: tuple[int, ...]) -> None:
    """Give annotated signals their public page now, before a dispatch carries them.

    Signals in a sent dispatch are public already (unless unpublished). A signal without the
    editor's read (no signal score and no why field) cannot be published. The static site
    (NEWSLETTER_WEB_ARCHIVE_DIR) is rebuilt when there is one.
    """
    _publish(app, signal_ids, public=True)


@signals.command("unpublish")
@signal_ids
@pass_app
def signals_unpublish(app: App, signal_ids: tuple[int, ...]) -> None:
    """Take signals' public pages down (404), even when a sent dispatch carried them.

    They leave the stream, the feeds and the sitemap; `publish` brings them back.
    """
    _publish(app, signal_ids, public=False)
