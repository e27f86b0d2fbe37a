"""`newsletter check` (pre-flight checks) and `newsletter dkim keygen`."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from newsletter.checks.report import CHECKS
from newsletter.cli.base import App, cli, pass_app, week_option


@cli.command()
@week_option
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option(
    "--links", is_flag=True, help="Also fetch every link in the email (uses the network)."
)
@click.option(
    "--link-timeout",
    type=click.FloatRange(min=0.1),
    default=10.0,
    show_default=True,
    help="Seconds to wait for each link.",
)
@click.option(
    "--screenshots",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write email-375.png and email-600.png to this folder.",
)
@click.option(
    "--eml",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Check this message file (.eml) instead of building the week's dispatch.",
)
@click.option(
    "--skip",
    multiple=True,
    type=click.Choice(CHECKS),
    help="Leave out a check (repeatable), e.g. --skip render --skip spam.",
)
@click.option(
    "--sections",
    metavar="A,B",
    help="Check only the variant readers of these sections get (default: every variant a"
    " send would mail).",
)
@pass_app
def check(
    app: App,
    week_text: str | None,
    as_json: bool,
    links: bool,
    link_timeout: float,
    screenshots: Path | None,
    eml: Path | None,
    skip: tuple[str, ...],
    sections: str | None,
) -> None:
    """Check the dispatch before sending: size, spam score, headers, links, DKIM, rendering.

    Builds the real message for a sample reader of every variant a send would mail (the
    readers' distinct section sets; each finding names its variant when there are several).
    Exit code 0 when nothing blocks sending (warnings allowed), 1 when any check reports an
    error.
    """

    from newsletter.checks import check_message, run_checks, sample_message
    from newsletter.engagement.tracking import destinations

    def progress(step: str) -> None:
        click.echo(f"... {step}", err=True)

    if eml is None and sections is None:
        report = run_checks(
            app.store,
            app.settings,
            app.week(week_text),
            links=links,
            link_timeout=link_timeout,
            screenshots=screenshots,
            skip=skip,
            progress=progress,
        )
    else:
        if eml is not None:
            raw = eml.read_bytes()
        else:
            week = app.week(week_text)
            raw = sample_message(app.store, app.settings, week, sections=sections).as_bytes()
        report = check_message(
            raw,
            app.settings,
            links=links,
            link_timeout=link_timeout,
            screenshots=screenshots,
            skip=skip,
            progress=progress,
            resolve=destinations(app.store),
        )
    click.echo(report.to_json() if as_json else report.to_text())
    if not report.ok:
        sys.exit(1)


@cli.group()
def dkim() -> None:
    """DKIM keys for signing the newsletter."""


@dkim.command("keygen")
@click.option("--selector", required=True, help="DKIM selector, e.g. brief2026.")
@click.option("--domain", required=True, help="Signing domain, normally the From domain.")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("dkim"),
    show_default=True,
    help="Folder for <selector>.private (mode 0600) and <selector>.txt.",
)
@click.option(
    "--bits", type=click.Choice(["2048", "3072", "4096"]), default="2048", show_default=True
)
def dkim_keygen(selector: str, domain: str, out_dir: Path, bits: str) -> None:
    """Write a DKIM key pair and print the DNS TXT record to publish. Never overwrites a key."""
    from newsletter.checks.auth import keygen

    pair = keygen(selector, domain, out_dir, bits=int(bits))
    click.echo(f"private key: {pair.key_file} (keep it secret; mode 0600)")
    click.echo(f"publish this DNS TXT record (also in {pair.record_file}):")
    click.echo(pair.record)
    click.echo("then set:")
    click.echo(f"  NEWSLETTER_DKIM_KEY_FILE={pair.key_file.resolve()}")
    click.echo(f"  NEWSLETTER_DKIM_SELECTOR={selector}")
    click.echo(f"  NEWSLETTER_DKIM_DOMAIN={domain}")
