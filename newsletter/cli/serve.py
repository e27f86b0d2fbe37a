"""`newsletter serve`: the public web service (sign-up form, links in mail, webhooks)."""

from __future__ import annotations

import click

from newsletter.cli.base import App, cli, pass_app


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="Port."
)
@click.option(
    "--workers", type=click.IntRange(1, 32), default=2, show_default=True, help="Processes."
)
@click.option(
    "--threads", type=click.IntRange(1, 64), default=8, show_default=True, help="Per process."
)
@click.option("--reload", is_flag=True, help="Development: restart when code or templates change.")
@pass_app
def serve(app: App, host: str, port: int, workers: int, threads: int, reload: bool) -> None:
    """Run the sign-up web service with waitress (production) or a reloading dev server."""
    from subscribers.server import serve as run  # the web package is loaded only here

    run(
        app.settings,
        host=host,
        port=port,
        workers=workers,
        threads=threads,
        reload=reload,
        echo=click.echo,
    )
