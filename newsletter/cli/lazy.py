"""A click group that imports a subcommand's module only when that subcommand runs.

Importing every command module up front made `newsletter --help` pay for the whole product
(checks, preview, DKIM, DNS, httpx): ten times a bare `import click`. A `LazyGroup` knows each
lazy subcommand's import path and one-line help, so its `--help` lists them all without
importing one. Subcommands defined next to their group (`@group.command()`) still work.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

import click

#: name -> ("package.module:attribute", "one-line help, the command's first sentence")
Registry = Mapping[str, tuple[str, str]]


class LazyGroup(click.Group):
    def __init__(self, *args: Any, lazy: Registry | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy: dict[str, tuple[str, str]] = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            self.commands[cmd_name] = load(self.lazy[cmd_name][0], cmd_name)
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """click's listing, with each lazy command's help from the registry (nothing imported)."""
        shown = {name: cmd for name, cmd in self.commands.items() if not cmd.hidden}
        for name, (_, help_text) in self.lazy.items():
            shown.setdefault(name, click.Command(name, help=help_text))
        if not shown:
            return
        limit = formatter.width - 6 - max(map(len, shown))
        rows = [(name, shown[name].get_short_help_str(limit)) for name in sorted(shown)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def load(target: str, name: str) -> click.Command:
    """The command object at "module:attribute"; a wrong line in a registry fails loudly."""
    module_name, _, attribute = target.partition(":")
    command = getattr(importlib.import_module(module_name), attribute, None)
    if not isinstance(command, click.Command):
        raise RuntimeError(f"command {name!r}: {target} is not a click command")
    return command
