"""`newsletter signals`: the editor's annotations and the signals in store."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from newsletter.cli.base import App, cli, pass_app, week_option
from newsletter.cli.table import table
from newsletter.errors import AnnotationError, NewsletterError

if TYPE_CHECKING:
    from newsletter.signals.annotations import ImportReport


@cli.group(
    lazy={
        "draft": (
            "newsletter.cli.editorial:signals_draft",
            "Ask a language model for the editorial read of the week's unannotated signals.",
        ),
        "accept": (
            "newsletter.cli.editorial:signals_accept",
            "Accept the waiting drafts of these signals: their fields fill the signal's empty"
            " ones.",
        ),
        "reject": (
            "newsletter.cli.editorial:signals_reject",
            "Reject the waiting drafts of these signals (they are not drafted again unless"
            " `signals draft --redraft`).",
        ),
        "rank": (
            "newsletter.cli.editorial:signals_rank",
            "The ranker that learns what this editor scores highly: its version and quality.",
        ),
    }
)
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
    from newsletter.signals.annotations import import_annotations

    paths: list[Path] = []
    for path in files:
        if path.is_dir():
            paths.extend(
                sorted(p for p in path.iterdir() if p.suffix.lower() in (".md", ".json", ".jsonl"))
            )
        else:
            paths.append(path)
    _print_report(import_annotations(app.store, paths, dry_run=dry_run))
    if not dry_run:
        _refit(app)


def _refit(app: App) -> None:
    """Scores may have changed: the ranker refits itself when its rule says so."""
    from newsletter.cli.editorial import refit_after_scores

    refit_after_scores(app)


@signals.command("list")
@week_option
@click.option("--category", help="Only this category (any case).")
@click.option("--unannotated", is_flag=True, help="Only signals the editor has not annotated.")
@click.option("--drafts", is_flag=True, help="Only signals with a machine draft waiting.")
@click.option(
    "--rank", "ranked", is_flag=True, help="Best first by the ranker's predicted editor's score."
)
@click.option("--limit", type=click.IntRange(min=1), help="At most this many, newest first.")
@pass_app
def signals_list(
    app: App,
    week_text: str | None,
    category: str | None,
    unannotated: bool,
    drafts: bool,
    ranked: bool,
    limit: int | None,
) -> None:
    """Stored signals, newest first, as a table (all weeks unless --week is given).

    D marks a signal whose machine draft waits for review. With --rank, PRED is the score the
    ranker predicts this editor would give (see `signals rank`).
    """
    filters: dict[str, object] = {
        "category": category,
        "unannotated": unannotated,
        "pending_draft": drafts,
    }
    if week_text is not None:
        start, end = app.week(week_text).bounds(app.settings.timezone)
        filters.update(start=start, end=end)
    found = app.store.signals.list(**filters)
    predicted: dict[int, float] = {}
    if ranked:
        from newsletter.editorial.ranking import rank, require_ranker

        ranker = require_ranker(app.store)
        ordered = rank(ranker, found)
        found = [s for s, _ in ordered]
        predicted = {s.id: p for s, p in ordered}
        click.echo(ranker.describe(), err=True)
    found = found[:limit]
    if not found:
        click.echo("no signals match")
        return
    waiting = set(app.store.drafts.pending_for(s.id for s in found))
    tz = app.settings.timezone
    header = ("ID", "PUBLISHED", "SCORE", *(("PRED",) if ranked else ()), "D", "CATEGORY")
    lines = table(
        (*header, "SOURCE", "TITLE"),
        (
            (
                signal.id,
                f"{signal.published.astimezone(tz):%Y-%m-%d}",
                "-" if signal.signal_score is None else signal.signal_score,
                *((f"{predicted[signal.id]:.0f}",) if ranked else ()),
                "D" if signal.id in waiting else "",
                _cut(signal.category or "-", 16),
                _cut(signal.source_label or "-", 24),
                _cut(signal.title, 80),
            )
            for signal in found
        ),
        right={0, 2, 3} if ranked else {0, 2},
    )
    click.echo("\n".join(lines))
    click.echo(f"{len(found)} signals")


def _cut(text: str, most: int) -> str:
    return text if len(text) <= most else text[: most - 1] + "…"


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
    from newsletter.signals.annotations import to_record

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
    _show_draft(app, signal_id)


def _show_draft(app: App, signal_id: int) -> None:
    draft = app.store.drafts.latest(signal_id)
    if draft is None:
        return
    origin = (
        f"by {draft['model']}, prompt {draft['prompt_version']} ({draft['prompt_hash']}),"
        f" {draft['created_at']}"
    )
    if draft["status"] != "pending":
        how = {"edit": "by editing", "auto": "automatically", "editor": "by the editor"}
        decided = how.get(draft["decided_by"] or "", "")
        click.echo(f"draft: {draft['status']} {decided} {draft['decided_at'] or ''} ({origin})")
        return
    click.echo(f"\nDRAFT waiting for review, not accepted: readers do not see it ({origin}):")
    for name, value in draft["fields"].items():
        if isinstance(value, list):
            click.echo(f"  {name}:")
            for phrase in value:
                click.echo(f"    - {phrase}")
        else:
            click.echo(f"  {name}: {value}")
    click.echo(
        f"accept: `newsletter signals accept {signal_id}` · edit: `newsletter signals edit"
        f" {signal_id}` · reject: `newsletter signals reject {signal_id}`"
    )


@signals.command("edit")
@click.argument("signal_id", metavar="ID", type=int)
@pass_app
def signals_edit(app: App, signal_id: int) -> None:
    """Open one signal's annotation form in $EDITOR and import it back when saved.

    Deleting a field from the form clears it. An invalid form is reported and offered for
    another edit; nothing is written until it is valid. A machine draft waiting for review
    fills the empty fields, marked in a comment; saving the form accepts it.
    """
    from newsletter.editorial.drafts import accept_edited, edit_form
    from newsletter.signals.annotations import edit_text

    text, drafted = edit_form(_row(app, signal_id), app.store.drafts.pending(signal_id))
    while True:
        edited = click.edit(text, extension=".md", require_save=True)
        if edited is None or (edited == text and not drafted):
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
        if drafted:
            accept_edited(app.store, signal_id)
            click.echo(f"draft accepted as edited: {', '.join(drafted)}")
        _print_report(report)
        _refit(app)
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
    from newsletter.signals.annotations import export_signals, markdown_name, to_markdown

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
