"""`newsletter signals draft / accept / reject / rank`: the editorial desk.

scikit-learn is imported only inside `signals rank --fit` and a due refit, never at start-up.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import click

from newsletter.cli.base import PARTIAL, App, pass_app, week_option
from newsletter.cli.signals import signals
from newsletter.editorial.client import ChatClient
from newsletter.editorial.drafts import (
    Outcome,
    accept,
    candidates,
    draft_signals,
    make_client,
    reject,
)
from newsletter.editorial.prompt import Prompt
from newsletter.editorial.ranking import (
    MIN_SCORED,
    Ranker,
    load_ranker,
    rank,
    refit_due,
    require_ranker,
)
from newsletter.errors import EditorialError
from newsletter.models import Signal


@signals.command("draft")
@week_option
@click.option("--source", metavar="NAME", help="Only signals collected from this source.")
@click.option("--top", type=click.IntRange(min=1), help="Only the N the ranker puts highest.")
@click.option("--limit", type=click.IntRange(min=1), help="At most N signals (newest first).")
@click.option(
    "--redraft", is_flag=True, help="Draft again signals whose draft waits or was rejected."
)
@click.option("--dry-run", is_flag=True, help="Show what would be asked; ask nothing.")
@pass_app
def signals_draft(
    app: App,
    week_text: str | None,
    source: str | None,
    top: int | None,
    limit: int | None,
    redraft: bool,
    dry_run: bool,
) -> None:
    """Ask a language model for the editorial read of the week's unannotated signals.

    Any OpenAI-compatible chat completions endpoint (NEWSLETTER_LLM_URL, NEWSLETTER_LLM_MODEL,
    NEWSLETTER_LLM_API_KEY or OPENAI_API_KEY). Each answer is validated like an annotation file
    and stored as a draft for the editor to review (`signals show`, `signals edit`, `preview`)
    and accept or reject; until then no reader sees it. A bad answer is reported with its
    reason and the others are still drafted: exit code 3 when any failed.
    """
    week = app.week(week_text)
    start, end = week.bounds(app.settings.timezone)
    chosen = candidates(app.store, start=start, end=end, source=source, redraft=redraft)
    if top is not None:
        chosen = [s for s, _ in rank(require_ranker(app.store), chosen)][:top]
    chosen = chosen[:limit]
    prompt = Prompt.load()
    if not chosen:
        click.echo(f"{week}: no unannotated signals without a draft; nothing to ask")
        return
    if dry_run:
        _show_question(app, chosen, prompt)
        return
    auto = app.settings.draft_auto_accept
    with make_client(app.settings) as client, _progress(len(chosen)) as progress:
        report = draft_signals(
            app.store,
            chosen,
            client,
            prompt,
            concurrency=app.settings.llm_concurrency,
            auto_accept=auto,
            progress=progress,
        )
    for outcome in report.failed:
        click.echo(f"✗ #{outcome.signal_id} {outcome.title[:60]}: {outcome.error}", err=True)
    done = "drafted and accepted (NEWSLETTER_DRAFT_AUTO_ACCEPT)" if auto else "drafted"
    click.echo(
        f"{len(report.drafted)} {done}, {len(report.failed)} failed"
        + (f", {report.not_asked} not asked" if report.not_asked else "")
        + (f" (answers as {report.mode})" if report.mode else "")
    )
    if report.drafted and not auto:
        click.echo("review: `newsletter signals list --drafts`, `signals show ID`, `preview`")
    if report.fatal:
        if not report.drafted and not report.failed:
            raise EditorialError(report.fatal)
        click.echo(f"Error: {report.fatal}", err=True)
        sys.exit(PARTIAL)
    if report.failed:
        sys.exit(PARTIAL)


def _show_question(app: App, chosen: list[Signal], prompt: Prompt) -> None:
    settings = app.settings
    client = ChatClient(settings.llm_url or "http://(NEWSLETTER_LLM_URL)", settings.llm_model)
    try:
        body = client.body(prompt.messages(chosen[0]))
    finally:
        client.close()
    click.echo(
        f"dry run: would ask {settings.llm_url or '(NEWSLETTER_LLM_URL is not set)'}"
        f"/chat/completions, model {settings.llm_model or '(NEWSLETTER_LLM_MODEL is not set)'},"
        f" prompt {prompt.version} ({prompt.digest}), about {len(chosen)} signals:"
    )
    for signal in chosen:
        click.echo(f"  #{signal.id}  {signal.title[:80]}")
    click.echo(f"\nthe request for #{chosen[0].id} (the others differ only in the signal):")
    click.echo(json.dumps(body, ensure_ascii=False, indent=2))


@contextmanager
def _progress(total: int) -> Iterator[Callable[[Outcome], None]]:
    """A progress bar on a terminal; a line per signal otherwise."""
    if sys.stderr.isatty():
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
        from rich.progress import Progress as Bar

        with Bar(
            TextColumn("drafting"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[failed]} failed"),
            TimeRemainingColumn(),
            transient=True,
        ) as bar:
            task = bar.add_task("draft", total=total, failed=0)
            failed = [0]

            def update(outcome: Outcome) -> None:
                failed[0] += outcome.error is not None
                bar.update(task, advance=1, failed=failed[0])

            yield update
        return

    def line(outcome: Outcome) -> None:
        if outcome.error is None:
            click.echo(f"✓ #{outcome.signal_id} {outcome.title[:70]}")

    yield line


signal_ids = click.argument("signal_ids", metavar="ID...", nargs=-1, type=click.IntRange(min=1))


@signals.command("accept")
@signal_ids
@click.option("--all", "all_", is_flag=True, help="Every draft that waits for review.")
@pass_app
def signals_accept(app: App, signal_ids: tuple[int, ...], all_: bool) -> None:
    """Accept the waiting drafts of these signals: their fields fill the signal's empty ones.

    A field the editor already wrote is kept. All or none: an ID without a draft changes
    nothing. Accepted reads reach readers with the next dispatch build.
    """
    ids = _ids(app, signal_ids, all_)
    kept = accept(app.store, ids)
    click.echo(f"accepted: {', '.join(map(str, ids))}")
    for signal_id, fields in kept.items():
        if fields:
            click.echo(f"  #{signal_id}: kept the editor's {', '.join(fields)}")
    refit_after_scores(app)


@signals.command("reject")
@signal_ids
@click.option("--all", "all_", is_flag=True, help="Every draft that waits for review.")
@pass_app
def signals_reject(app: App, signal_ids: tuple[int, ...], all_: bool) -> None:
    """Reject the waiting drafts of these signals (they are not drafted again unless
    `signals draft --redraft`). The signals stay as they were."""
    rejected = reject(app.store, _ids(app, signal_ids, all_))
    click.echo(f"rejected: {', '.join(map(str, rejected))}")


def _ids(app: App, signal_ids: tuple[int, ...], all_: bool) -> list[int]:
    if all_ == bool(signal_ids):
        raise click.UsageError("give signal IDs or --all")
    ids = app.store.drafts.pending_ids() if all_ else list(signal_ids)
    if not ids:
        raise EditorialError("no drafts wait for review")
    return ids


@signals.command("rank")
@click.option("--fit", "fit_", is_flag=True, help="Fit the ranker again now.")
@pass_app
def signals_rank(app: App, fit_: bool) -> None:
    """The ranker that learns what this editor scores highly: its version and quality.

    It fits a TF-IDF model of title and summary with a linear regression on the signals the
    editor has scored (at least 20), and refits itself once NEWSLETTER_RANK_REFIT_AFTER more
    are scored. Quality is the held-out rank correlation (Spearman) between the editor's scores
    and the scores predicted for signals the model did not see: 1 is a perfect order, 0 no
    better than chance.
    """
    due = fit_ or refit_due(app.store, app.settings)
    ranker = _fit(app) if due else load_ranker(app.store)
    if ranker is None:
        scored = app.store.drafts.training_count()
        raise EditorialError(
            f"no ranker yet: it needs {MIN_SCORED} signals the editor has scored, there are"
            f" {scored}"
        )
    click.echo(ranker.describe() + f" ({ranker.created_at})")
    _explain(ranker.spearman)
    waiting = app.store.drafts.training_count() - ranker.scored
    if waiting > 0:
        click.echo(f"{waiting} more scored signals since; `signals rank --fit` refits now")


def _fit(app: App) -> Ranker:
    from newsletter.editorial.fit import fit_and_store

    return fit_and_store(app.store)


def _explain(rho: float | None) -> None:
    if rho is None:
        click.echo("  (no rank correlation: the held-out predictions did not vary)")
    elif rho < 0.2:
        click.echo("  that is close to chance: score more signals before trusting its order")
    elif rho < 0.5:
        click.echo("  a weak order: use it to sort, not to decide")


def refit_after_scores(app: App) -> None:
    """The stated rule (ranking.refit_due), applied after a command changed editorial scores."""
    if not refit_due(app.store, app.settings):
        return
    try:
        ranker = _fit(app)
    except EditorialError as exc:
        click.echo(f"ranker not refitted: {exc}", err=True)
        return
    click.echo(f"refitted {ranker.describe()}")
