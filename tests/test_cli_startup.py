"""The command line starts without loading the product: each command imports what it uses.

Every check runs the real CLI in a fresh interpreter and reads `sys.modules` at its exit, so an
import added at the top of a command module (or of the ground floor) fails here, not only in
`make bench`.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import click
import click.testing
import pytest

import newsletter.cli
from newsletter.cli import cli
from newsletter.cli.commands import COMMANDS
from newsletter.cli.lazy import LazyGroup

FEED = (Path(__file__).parent / "fixtures" / "feeds" / "realworld").glob("*.atom")

#: what none of the commands below may load: the product's heavy stages and their libraries
HEAVY = (
    "feedparser",
    "nh3",
    "httpx",
    "sqlite_utils",
    "dotenv",
    "jinja2",
    "mjml",
    "markdown_it",
    "email_validator",
    "dkim",
    "dns",
    "rich",
    "flask",
    "werkzeug",
    "cryptography",
    "msgspec",
    "yaml",
    "botocore",
    "playwright",
    "numpy",
    "pandas",
    "pygal",
    "newsletter.checks.preflight",
    "newsletter.delivery",
    "newsletter.dispatch.render",
    "newsletter.dispatch.archive",
    "newsletter.preview",
    "newsletter.signals.parse",
)

_PROBE = """
import sys
from newsletter.cli import main
sys.argv = ["newsletter", *sys.argv[1:]]
try:
    main()
except SystemExit as stop:
    code = stop.code
else:
    code = 0
with open({out!r}, "w") as out:
    out.write("\\n".join(sorted(sys.modules)))
sys.exit(code)
"""


def loaded_by(tmp_path: Path, *args: str, code: int = 0) -> set[str]:
    """The modules a real `newsletter ARGS` process had loaded when it finished."""
    out = tmp_path / "modules.txt"
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("NEWSLETTER_", "AWS_"))}
    environ["NEWSLETTER_DB"] = str(tmp_path / "n.db")
    done = subprocess.run(
        [sys.executable, "-c", _PROBE.format(out=str(out)), *args],
        cwd=tmp_path,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == code, done.stdout + done.stderr
    return set(out.read_text().split())


def heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in HEAVY or m.startswith(HEAVY))


def test_help_lists_every_command_without_importing_any(tmp_path: Path) -> None:
    modules = loaded_by(tmp_path, "--help")
    assert heavy(modules) == []
    commands = [m for m in modules if m.startswith("newsletter.cli.")]
    assert sorted(commands) == [
        "newsletter.cli.base",
        "newsletter.cli.commands",
        "newsletter.cli.lazy",
    ]


@pytest.mark.parametrize(
    "args",
    [
        ("sources", "list"),
        ("subscribers", "list"),
        ("signals", "list"),
        ("deliveries", "--week", "2026-W24"),
        ("send", "--help"),
        ("check", "--help"),
        ("preview", "--help"),
        ("dispatch", "build", "--help"),
        ("serve", "--help"),
        ("stats", "--help"),
    ],
)
def test_a_command_loads_only_what_it_uses(tmp_path: Path, args: tuple[str, ...]) -> None:
    loaded_by(tmp_path, "init")  # an existing, up-to-date database: no migration runs
    modules = loaded_by(tmp_path, *args, code=1 if args[0] == "deliveries" else 0)
    assert heavy(modules) == []


def test_stats_loads_the_plotting_library_only_for_its_chart(tmp_path: Path) -> None:
    loaded_by(tmp_path, "demo")
    assert "pygal" not in loaded_by(tmp_path, "stats", "--json")
    assert "pygal" in loaded_by(tmp_path, "stats", "--html", str(tmp_path / "stats.html"))


def test_an_env_file_loads_dotenv_only_then(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("NEWSLETTER_NAME=Elsewhere\n")
    assert "dotenv" in loaded_by(tmp_path, "sources", "list")


@contextmanager
def feed_server() -> Iterator[str]:
    body = next(iter(FEED)).read_bytes()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.headers.get("If-None-Match") == '"v1"':
                self.send_response(304)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/atom+xml")
            self.send_header("ETag", '"v1"')
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/feed.atom"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_an_unchanged_re_poll_parses_nothing(tmp_path: Path) -> None:
    with feed_server() as url:
        loaded_by(tmp_path, "sources", "add", "releases", url)
        first = loaded_by(tmp_path, "collect")
        again = loaded_by(tmp_path, "collect")
    assert {"feedparser", "nh3"} <= first  # the first fetch parsed the feed
    assert "httpx" in again
    assert {"feedparser", "nh3", "sqlite_utils", "jinja2", "rich", "pygments"}.isdisjoint(again)


def test_every_registry_line_names_its_command_and_help() -> None:
    for name, (target, help_text) in COMMANDS.items():
        module_name, _, attribute = target.partition(":")
        command = getattr(importlib.import_module(module_name), attribute)
        assert isinstance(command, click.Command), target
        assert command.name == name, f"{target} is named {command.name!r}, registered as {name!r}"
        assert command.get_short_help_str(limit=1000) == help_text, (
            f"cli/commands.py: the help of {name!r} must be the first sentence of its docstring"
        )


def test_every_command_has_a_registry_line() -> None:
    """A command that only a module's import registers would be missing from a lazy CLI: each
    top-level one needs its line in cli/commands.py, and a subcommand defined in another module
    than its group needs one in the group's `lazy=` registry."""
    for module in pkgutil.iter_modules(newsletter.cli.__path__):
        importlib.import_module(f"newsletter.cli.{module.name}")
    missing = sorted(set(cli.commands) - set(COMMANDS))
    assert missing == [], f"add these to newsletter/cli/commands.py: {missing}"
    for path, group in _groups(cli):
        home = group.callback.__module__ if group.callback else None
        strays = {
            name: command.callback.__module__
            for name, command in group.commands.items()
            if group is not cli
            and command.callback is not None
            and command.callback.__module__ != home
            and name not in getattr(group, "lazy", {})
        }
        assert strays == {}, f"`{path}`: add these to its lazy= registry in {home}: {strays}"


def _groups(group: click.Group, path: str = "newsletter") -> Iterator[tuple[str, click.Group]]:
    yield path, group
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        sub = group.get_command(ctx, name)
        if isinstance(sub, click.Group):
            yield from _groups(sub, f"{path} {name}")


def test_nested_groups_are_lazy_and_list_their_lazy_subcommands() -> None:
    for path, group in _groups(cli):
        assert isinstance(group, LazyGroup), f"`{path}` is not a LazyGroup"
        ctx = click.Context(group)
        for name, (target, help_text) in group.lazy.items():
            loaded = group.get_command(ctx, name)
            assert loaded is not None and loaded.get_short_help_str(1000) == help_text, target


def test_a_lazy_subcommand_is_listed_without_import_and_loaded_to_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "elsewhere_cmds.py").write_text(
        "import click\n\n"
        "@click.command()\n"
        "def draft():\n"
        '    """Draft annotations for new signals. More text here."""\n'
        '    click.echo("drafted")\n'
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    group = LazyGroup(
        "signals",
        lazy={
            "draft": ("elsewhere_cmds:draft", "Draft annotations for new signals."),
            "broken": ("elsewhere_cmds:nothing_here", "A line that names no command."),
        },
    )
    runner = click.testing.CliRunner()
    listing = runner.invoke(group, ["--help"])
    assert "draft   Draft annotations for new signals." in listing.output
    assert "elsewhere_cmds" not in sys.modules
    assert runner.invoke(group, ["draft"]).output == "drafted\n"
    failed = runner.invoke(group, ["broken"])
    assert isinstance(failed.exception, RuntimeError)
    assert "elsewhere_cmds:nothing_here is not a click command" in str(failed.exception)
