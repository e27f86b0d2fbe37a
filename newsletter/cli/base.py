"""The root `newsletter` command group and what every subcommand shares: settings, store, errors.

Commands parse arguments, call the library once, and turn its errors into one-line messages.
Exit codes: 0 done, 1 error (nothing changed), 2 usage error, 3 partly done (some sources or
deliveries failed; the rest landed).

Nothing here imports more than click and the ground floor's errors at module level: this module
is loaded by every command, `--help` included (see cli/commands.py for why that matters).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import cached_property, update_wrapper
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from newsletter import __version__
from newsletter.cli.commands import COMMANDS
from newsletter.cli.lazy import LazyGroup
from newsletter.errors import NewsletterError

if TYPE_CHECKING:
    from newsletter.settings import Settings
    from newsletter.store import Store
    from newsletter.weeks import Week

PARTIAL = 3
#: read when present; naming another file with --env-file makes it required
DEFAULT_ENV_FILE = Path(".env")

F = TypeVar("F", bound=Callable[..., Any])


class App:
    """Lazily loaded settings and store, so `--help` works even with a broken `.env`."""

    def __init__(self, env_file: Path | None, db: Path | None) -> None:
        self.env_file = env_file
        self.db_override = db
        self._store: Store | None = None

    @cached_property
    def settings(self) -> Settings:
        from newsletter.settings import load_settings

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
            from newsletter.store import Store

            self._store = Store.open(self.settings.db)
        return self._store

    def week(self, text: str | None) -> Week:
        """The week asked for, or the current ISO week in the publication's timezone."""
        from datetime import UTC, datetime

        from newsletter.weeks import Week

        if text is None:
            return Week.containing(datetime.now(UTC), self.settings.timezone)
        try:
            return Week.parse(text)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--week") from None

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


class Root(LazyGroup):
    """Turns every NewsletterError, and any storage error of the database (a full disk, a damaged
    or read-only file), into one line on stderr and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except NewsletterError as exc:
            raise click.ClickException(str(exc)) from None
        except Exception as exc:
            # sqlite3 is loaded only by commands that opened the database; --help never has
            sqlite3 = sys.modules.get("sqlite3")
            if sqlite3 is None or not isinstance(exc, sqlite3.DatabaseError):
                raise
            from newsletter.store import storage_error

            app = ctx.find_object(App)
            path = app.db_path if app is not None else None
            raise click.ClickException(str(storage_error(path, exc))) from None


def _logging(verbose: int, quiet: bool, level_name: str) -> None:
    import logging

    level = logging.WARNING if quiet else logging.DEBUG if verbose else None
    logging.basicConfig(
        level=level or getattr(logging, level_name.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)


@click.group(
    cls=Root,
    lazy=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(__version__, prog_name="newsletter")
@click.option(
    "--env-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help=f"Settings file read before the environment (default: {DEFAULT_ENV_FILE}, if present).",
)
@click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Database file (overrides NEWSLETTER_DB).",
)
@click.option("-v", "--verbose", count=True, help="Log more (debug).")
@click.option("-q", "--quiet", is_flag=True, help="Log only warnings and errors.")
@click.pass_context
def cli(
    ctx: click.Context, env_file: Path | None, db: Path | None, verbose: int, quiet: bool
) -> None:
    """A weekly email newsletter pipeline: collect signals, build the dispatch, send it."""
    app = App(env_file or DEFAULT_ENV_FILE, db)
    ctx.obj = app
    ctx.call_on_close(app.close)
    try:
        level = app.settings.log_level
    except NewsletterError:
        level = "info"  # the command itself reports the bad setting
    _logging(verbose, quiet, level)


#: groups made with `@cli.group()` (and their own `.group()`) are lazy too
Root.group_class = type


def pass_app(f: F) -> F:
    """Hand the command the App instead of the click context."""

    @click.pass_context
    def wrapper(ctx: click.Context, *args: Any, **kwargs: Any) -> Any:
        return ctx.invoke(f, ctx.find_object(App), *args, **kwargs)

    return update_wrapper(wrapper, f)  # type: ignore[return-value]


week_option = click.option(
    "--week", "week_text", metavar="YYYY-Www", help="ISO week, e.g. 2026-W24 (default: this week)."
)
