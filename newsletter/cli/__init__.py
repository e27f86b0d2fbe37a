"""The `newsletter` command line: the root group in cli/base.py, its commands listed in
cli/commands.py and imported only when one runs."""

from newsletter.cli.base import cli

__all__ = ["cli", "main"]


def main() -> None:
    cli(prog_name="newsletter")
