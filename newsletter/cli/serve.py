"""`newsletter serve`: the public web service (sign-up form, links in mail, webhooks)."""

from __future__ import annotations

from urllib.parse import urlsplit

import click

from newsletter.cli.base import App, cli, pass_app

#: hosts that mean "this machine": a public URL on one of them is a local setup
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0", "::"})  # noqa: S104


def address_warning(public_url: str, host: str, port: int) -> str | None:
    """Why links in mail would miss this server, when NEWSLETTER_PUBLIC_URL names this machine
    and the address served is another one; None when they agree or the URL is a real host
    (behind a proxy the two differ by design)."""
    parts = urlsplit(public_url)
    public_host = (parts.hostname or "").lower()
    if public_host not in LOCAL_HOSTS and not public_host.endswith(".localhost"):
        return None
    public_port = parts.port or (443 if parts.scheme == "https" else 80)
    served = f"http://{host}:{port}" if ":" not in host else f"http://[{host}]:{port}"
    fix = (
        f"http://{public_host}:{port}"
        if ":" not in public_host
        else f"http://[{public_host}]:{port}"
    )
    if port == 0:
        why = "--port 0 picks a free port, which no link can know"
        fix_line = f"serve --port {public_port}"
    elif port != public_port:
        why = f"they point at port {public_port}"
        fix_line = f"NEWSLETTER_PUBLIC_URL={fix} (or serve --port {public_port})"
    elif host.lower() not in LOCAL_HOSTS:
        why = f"they point at {public_host}, which only this machine reaches"
        fix_line = f"NEWSLETTER_PUBLIC_URL=http://{host}:{port}"
    else:
        return None
    return (
        f"warning: links in mail (confirm, unsubscribe) use NEWSLETTER_PUBLIC_URL={public_url}"
        f" but this serves {served}: {why}; set {fix_line}"
    )


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

    warning = address_warning(app.settings.public_url, host, port)
    if warning:
        click.echo(warning, err=True)
    run(
        app.settings,
        host=host,
        port=port,
        workers=workers,
        threads=threads,
        reload=reload,
        echo=click.echo,
    )
