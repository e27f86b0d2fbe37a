"""`newsletter stats`: what a sent dispatch did (engagement)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from newsletter.cli.base import App, cli, pass_app


@cli.command()
@click.option(
    "--week",
    "week_text",
    metavar="YYYY-Www",
    help="ISO week, e.g. 2026-W24 (default: the newest dispatch that has gone out).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@click.option(
    "--html",
    "html_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the figures as a page with a chart of clicks per signal.",
)
@pass_app
def stats(app: App, week_text: str | None, as_json: bool, html_file: Path | None) -> None:
    """Deliveries, unsubscribes, complaints and clicks per signal and link for a sent dispatch.

    Clicks a person made (a GET from a browser) are counted apart from automated ones: HEAD
    requests, scanners and previews by their user agent, and bursts that follow several links
    of one message within seconds. Queued clicks whose burst window has closed are classified
    first, and raw click rows past NEWSLETTER_CLICK_RETENTION_DAYS are folded into counts.
    """
    from newsletter.engagement.recorder import maintain
    from newsletter.engagement.stats import figures, latest_week, to_text
    from newsletter.errors import DispatchError

    store, settings = app.store, app.settings
    if week_text is None:
        found = latest_week(store)
        if found is None:
            raise DispatchError(
                "no dispatch has gone out yet: `newsletter send` one first (or pick --week)"
            )
        week_text = found
    week = app.week(week_text)
    maintain(store, settings)
    result = figures(store, settings, week)
    if html_file is not None:
        from newsletter.engagement.chart import stats_page
        from newsletter.private_files import make_dirs

        make_dirs(html_file.parent)
        html_file.write_text(stats_page(result, settings), encoding="utf-8")
        click.echo(f"stats page: {html_file.resolve()}", err=True)
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2, ensure_ascii=False))
    else:
        click.echo(to_text(result), nl=False)
