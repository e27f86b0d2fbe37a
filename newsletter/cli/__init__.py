"""The `newsletter` command line. Each module registers its commands on the root group."""

from newsletter.cli import (  # noqa: F401  (imported to register their commands)
    check,
    collect,
    demo,
    dispatch,
    editorial,
    send,
    serve,
    signals,
    subscribers,
)
from newsletter.cli.base import cli

__all__ = ["cli", "main"]


def main() -> None:
    cli(prog_name="newsletter")
