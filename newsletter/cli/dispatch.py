"""`newsletter dispatch ...`, `newsletter preview` and `newsletter archive build`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import IO, TYPE_CHECKING

import click

from newsletter.cli.base import App, cli, pass_app, week_option

if TYPE_CHECKING:
    from newsletter.models import Dispatch
    from newsletter.settings import Settings
    from newsletter.weeks import Week


@cli.group()
def dispatch() -> None:
    """The week's dispatch: build, pin/drop signals, set texts, show, approve."""


def _number(shown: Dispatch) -> str:
    return str(shown.issue_number) if shown.issue_number > 0 else "none yet"


def _summary(built: Dispatch) -> None:
    if not built.signals:
        click.echo(f"{built.week}: no eligible signals this week; nothing will be sent")
        return
    click.echo(
        f"dispatch {built.week} (issue {_number(built)}, {built.status}): "
        f"{len(built.signals)} signals in {len(built.sections)} sections"
    )
    click.echo(f"subject: {built.subject}")


@dispatch.command("build")
@week_option
@pass_app
def dispatch_build(app: App, week_text: str | None) -> None:
    """Select the week's strongest signals into a draft.

    Building again refreshes the draft and keeps the editor's pins, drops and texts; a sent
    dispatch is frozen and refuses. An empty week is not an error: nothing will be sent.
    """
    from newsletter.dispatch.build import build_dispatch

    _summary(build_dispatch(app.store, app.settings, app.week(week_text)))


signal_ids_argument = click.argument(
    "signal_ids", metavar="ID...", nargs=-1, required=True, type=click.IntRange(min=1)
)


@dispatch.command("pin")
@signal_ids_argument
@click.option("--undo", is_flag=True, help="Unpin instead.")
@week_option
@pass_app
def dispatch_pin(app: App, signal_ids: tuple[int, ...], undo: bool, week_text: str | None) -> None:
    """Always include these signals (IDs from `signals list`), whatever their score."""
    from newsletter.dispatch.build import choose

    built = choose(app.store, app.settings, app.week(week_text), signal_ids, pin=True, undo=undo)
    click.echo(f"{'unpinned' if undo else 'pinned'}: {', '.join(map(str, signal_ids))}")
    _summary(built)


@dispatch.command("drop")
@signal_ids_argument
@click.option("--undo", is_flag=True, help="Bring dropped signals back instead.")
@week_option
@pass_app
def dispatch_drop(app: App, signal_ids: tuple[int, ...], undo: bool, week_text: str | None) -> None:
    """Leave these signals out of the dispatch (a rebuild keeps them out)."""
    from newsletter.dispatch.build import choose

    built = choose(app.store, app.settings, app.week(week_text), signal_ids, drop=True, undo=undo)
    click.echo(f"{'restored' if undo else 'dropped'}: {', '.join(map(str, signal_ids))}")
    _summary(built)


@dispatch.command("set")
@click.option("--subject", help='Subject line ("" returns to the generated one).')
@click.option("--preheader", help='Preview text shown after the subject ("": generated).')
@click.option("--note", help='Editor\'s note in Markdown, shown above the signals ("": none).')
@click.option(
    "--note-file",
    type=click.File("r", encoding="utf-8"),
    help="Read the editor's note from a Markdown file (- for stdin).",
)
@week_option
@pass_app
def dispatch_set(
    app: App,
    subject: str | None,
    preheader: str | None,
    note: str | None,
    note_file: IO[str] | None,
    week_text: str | None,
) -> None:
    """Set the subject, preheader or editor's note; a rebuild keeps them."""
    from newsletter.dispatch.build import edit_text

    if note is not None and note_file is not None:
        raise click.UsageError("give --note or --note-file, not both")
    if note_file is not None:
        note = note_file.read()
    if subject is None and preheader is None and note is None:
        raise click.UsageError("nothing to set: give --subject, --preheader, --note or --note-file")
    built = edit_text(
        app.store,
        app.settings,
        app.week(week_text),
        subject=subject,
        preheader=preheader,
        note=note,
    )
    click.echo(f"dispatch {built.week} updated ({built.status})")
    click.echo(f"subject:   {built.subject}")
    click.echo(f"preheader: {built.preheader}")


@dispatch.command("show")
@week_option
@pass_app
def dispatch_show(app: App, week_text: str | None) -> None:
    """The dispatch's status, texts and signals by section, with the editor's pins and drops."""
    from newsletter.dispatch.build import load_dispatch, no_dispatch

    week = app.week(week_text)
    shown = load_dispatch(app.store, app.settings, week)
    if shown is None:
        raise no_dispatch(app.store, app.settings, week)
    pinned, dropped = app.store.dispatches.editor_choices(shown.id)
    click.echo(f"dispatch {shown.week} · issue {_number(shown)} · {shown.status}")
    click.echo(f"subject:   {shown.subject}")
    click.echo(f"preheader: {shown.preheader}")
    if shown.note:
        click.echo("note:      " + shown.note.strip().replace("\n", "\n           "))
    if not shown.signals:
        click.echo("\nno signals: nothing will be sent")
    for section in shown.sections:
        click.echo(f"\n[{section.title}]")
        for signal in section.signals:
            mark = "pinned" if signal.id in pinned else ""
            score = signal.signal_score if signal.signal_score is not None else "-"
            click.echo(f"  {signal.id:>5}  {score:>3}  {mark:<6}  {signal.title}")
    if dropped:
        click.echo(f"\ndropped: {', '.join(map(str, sorted(dropped)))}")


@dispatch.command("approve")
@week_option
@pass_app
def dispatch_approve(app: App, week_text: str | None) -> None:
    """Mark the draft ready to send (`weekly` sends only approved dispatches)."""
    from newsletter.dispatch.build import approve

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
@click.option("--open", "open_", is_flag=True, help="Open the HTML in the default browser.")
@click.option(
    "--serve",
    is_flag=True,
    help="Serve phone and desktop views on 127.0.0.1, reloading on every change (Ctrl-C stops).",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8025,
    show_default=True,
    help="Port for --serve (0: any free one).",
)
@click.option("--text", "show_text", is_flag=True, help="Print the plain-text part.")
@click.option("--to", "to", metavar="EMAIL", help="Send one test message ([TEST] in the subject).")
@click.option("--dry-run", is_flag=True, help="With --to: build the test message, send nothing.")
@click.option(
    "--no-drafts",
    is_flag=True,
    help="Leave out waiting machine drafts: exactly what readers get.",
)
@click.option(
    "--sections",
    metavar="A,B",
    help="The variant readers of these sections get (the week's section titles, any case).",
)
@pass_app
def preview(
    app: App,
    week_text: str | None,
    output: Path,
    open_: bool,
    serve: bool,
    port: int,
    show_text: bool,
    to: str | None,
    dry_run: bool,
    no_drafts: bool,
    sections: str | None,
) -> None:
    """The dispatch as a sample reader will see it: a file, a live view, or a test message.

    Machine drafts that wait for review are shown in place, each card marked as a draft, in
    the file, the live view and --text (never in a test message, nor for readers). With
    --sections, the variant of readers who chose those sections: its lead, subject and text.
    """
    from newsletter.preview import preview_message, send_test, write_preview

    week = app.week(week_text)
    drafts = not no_drafts
    if dry_run and not to:
        raise click.UsageError("--dry-run goes with --to")
    if show_text:
        shown = preview_message(app.store, app.settings, week, drafts=drafts, sections=sections)
        click.echo(shown[1], nl=False)
    if to:
        from newsletter.delivery.senders import make_sender

        with make_sender(app.settings) as sender:
            message = send_test(
                app.store, app.settings, week, to, sender, dry_run=dry_run, sections=sections
            )
        verb = "would send" if dry_run else "sent"
        click.echo(f"{verb} test message to {message.to_addr}: {message.subject}", err=show_text)
    if serve:
        _serve(app, week, port, open_, drafts, sections)
        return
    if show_text or to:
        return
    path = write_preview(app.store, app.settings, week, output, drafts=drafts, sections=sections)
    click.echo(f"preview: {path}")
    if open_:
        import webbrowser

        webbrowser.open(path.as_uri())


def _serve(
    app: App, week: Week, port: int, open_: bool, drafts: bool, sections: str | None
) -> None:
    from newsletter.preview import live_renderer, make_preview_server
    from newsletter.settings import load_settings

    def settings() -> Settings:  # re-read .env on every render, so a changed setting shows
        fresh = load_settings(env_file=app.env_file)
        return fresh.replace(db=app.settings.db)

    from newsletter.checks.panel import checks_page
    from newsletter.engagement.chart import previous_page

    server = make_preview_server(
        live_renderer(app.store, settings, week, drafts=drafts, sections=sections),
        title=f"{app.settings.name} · {week}",
        port=port,
        panel=lambda: checks_page(app.store, settings(), week),
        stats=lambda: previous_page(app.store, settings(), week),
    )
    click.echo(f"preview: {server.url}  (Ctrl-C stops)", err=True)
    if open_:
        import webbrowser

        webbrowser.open(server.url)
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        click.echo("stopped", err=True)
    finally:
        server.server_close()
    sys.stdout.flush()


@cli.group()
def archive() -> None:
    """The static site: the archive of sent dispatches and the signal stream."""


@archive.command("build")
@click.option(
    "--output",
    "-o",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to write (default: NEWSLETTER_WEB_ARCHIVE_DIR, what `serve` publishes).",
)
@pass_app
def archive_build(app: App, output: Path | None) -> None:
    """Write the static site: the archive (an index, a page per sent dispatch, an RSS feed)
    and the signal stream under signals/ (a page per public signal, the stream, Atom and JSON
    feeds), a stylesheet and sitemap.xml."""
    from newsletter.site.build import build_site

    report = build_site(app.store, app.settings, output)
    issues = f"{report.issues} issue{'s' if report.issues != 1 else ''}"
    signals = f"{report.signals} signal page{'s' if report.signals != 1 else ''}"
    click.echo(f"archive: {report.folder} ({issues}, {signals}, {report.files} files)")
