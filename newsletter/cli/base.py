"""The root `newsletter` command group and what every subcommand shares: settings, store, errors.

Commands parse arguments, call the library once, and turn its errors into one-line messages.
Exit codes: 0 done, 1 error (nothing changed), 2 usage error, 3 partly done (some sources or
deliveries failed; the rest landed).
"""

from __future__ import annotations

import logging
import sqlite3
import sys
from collections.abc import Callable
from functools import cached_property, update_wrapper
from pathlib import Path
from typing import Any, TypeVar

import click

from newsletter import __version__
from newsletter.errors import NewsletterError
from newsletter.settings import Settings, load_settings
from newsletter.store import Store, storage_error
from newsletter.weeks import Week

PARTIAL = 3

F = TypeVar("F", bound=Callable[..., Any])


class App:
    """Lazily loaded settings and store, so `--help` works even with a broken `.env`."""

    def __init__(self, env_file: Path | None, db: Path | None) -> None:
        self.env_file = env_file
        self.db_override = db
        self._store: Store | None = None

    @cached_property
    def settings(self) -> Settings:
        settings = load_settings(env_file=self.env_file)
        if self.db_override is not None:
            settings = settings.replace(db=self.db_override)
        return settings

    @property
    def db_path(self) -> Path | None:
        """The database file, when the settings can say (for error messages)."""
        if self.db_override is not None:
            return self.db_override
        try:
            return self.settings.db
        except NewsletterError:
            return None

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store.open(self.settings.db)
        return self._store

    def week(self, text: str | None) -> Week:
        """The week asked for, or the current ISO week in the publication's timezone."""
        from newsletter.dispatch.build import current_week

        if text is None:
            return current_week(self.settings)
        try:
            return Week.parse(text)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--week") from None

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


class Root(click.Group):
    """Turns every NewsletterError, and any storage error of the database (a full disk, a damaged
    or read-only file), into one line on stderr and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except NewsletterError as exc:
            raise click.ClickException(str(exc)) from None
        except sqlite3.DatabaseError as exc:
            app = ctx.find_object(App)
            path = app.db_path if app is not None else None
            raise click.ClickException(str(storage_error(path, exc))) from None


def _logging(verbose: int, quiet: bool, level_name: str) -> None:
    level = logging.WARNING if quiet else logging.DEBUG if verbose else None
    logging.basicConfig(
        level=level or getattr(logging, level_name.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)


@click.group(cls=Root, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="newsletter")
@click.option(
    "--env-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=".env",
    show_default=True,
    help="Settings file read before the environment (optional).",
)
@click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Database file (overrides NEWSLETTER_DB).",
)
@click.option("-v", "--verbose", count=True, help="Log more (debug).")
@click.option("-q", "--quiet", is_flag=True, help="Log only warnings and errors.")
@click.pass_context
def cli(ctx: click.Context, env_file: Path, db: Path | None, verbose: int, quiet: bool) -> None:
    """A weekly email newsletter pipeline: collect signals, build the dispatch, send it."""
    app = App(env_file, db)
    ctx.obj = app
    ctx.call_on_close(app.close)
    try:
        level = app.settings.log_level
    except NewsletterError:
        level = "info"  # the command itself reports the bad setting
    _logging(verbose, quiet, level)


def pass_app(f: F) -> F:
    """Hand the command the App instead of the click context."""

    @click.pass_context
    def wrapper(ctx: click.Context, *args: Any, **kwargs: Any) -> Any:
        return ctx.invoke(f, ctx.find_object(App), *args, **kwargs)

    return update_wrapper(wrapper, f)  # type: ignore[return-value]


week_option = click.option(
    "--week", "week_text", metavar="YYYY-Www", help="ISO week, e.g. 2026-W24 (default: this week)."
)
