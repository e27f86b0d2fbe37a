"""Every top-level command of `newsletter`: where it lives and its one-line help.

`newsletter --help` lists these without importing a command module; a command's module is
imported only when that command runs, so a command pays for its own libraries and no other's.

Adding a command: write it in its module (`@cli.command()` or `@cli.group()`, importing heavy
libraries inside the function), then add its line here. The help is the first sentence of the
command's docstring; `tests/test_cli_startup.py` fails when a line and its command disagree or
a command has no line. A subcommand living in another module than its group goes in the
group's own registry the same way, e.g. in cli/signals.py:
`@cli.group(lazy={"draft": ("newsletter.cli.editorial:draft", "Draft ...")})`.
"""

from __future__ import annotations

from newsletter.cli.lazy import Registry

COMMANDS: Registry = {
    "archive": (
        "newsletter.cli.dispatch:archive",
        "The static site: the archive of sent dispatches and the signal stream.",
    ),
    "check": (
        "newsletter.cli.check:check",
        "Check the dispatch before sending: size, spam score, headers, links, DKIM, rendering.",
    ),
    "collect": (
        "newsletter.cli.collect:collect",
        "Fetch every enabled source and store its items as signals.",
    ),
    "deliveries": (
        "newsletter.cli.send:deliveries",
        "Counts by status for the week's dispatch, and the failures with their reasons.",
    ),
    "demo": (
        "newsletter.cli.demo:demo",
        "Run the whole weekly pipeline on bundled sample data, offline, with the file sender.",
    ),
    "dispatch": (
        "newsletter.cli.dispatch:dispatch",
        "The week's dispatch: build, pin/drop signals, set texts, show, approve.",
    ),
    "dkim": ("newsletter.cli.check:dkim", "DKIM keys for signing the newsletter."),
    "init": (
        "newsletter.cli.collect:init",
        "Create the database (or migrate an older one in place).",
    ),
    "preview": (
        "newsletter.cli.dispatch:preview",
        "The dispatch as a sample reader will see it: a file, a live view, or a test message.",
    ),
    "send": (
        "newsletter.cli.send:send",
        "Send the dispatch to every active subscriber, exactly once each.",
    ),
    "serve": (
        "newsletter.cli.serve:serve",
        "Run the sign-up web service with waitress (production) or a reloading dev server.",
    ),
    "signals": (
        "newsletter.cli.signals:signals",
        "Signals: import and export the editor's annotations, list, show and edit them.",
    ),
    "sources": (
        "newsletter.cli.collect:sources",
        "The feeds to collect: add, list, enable, disable, remove, or load from a file.",
    ),
    "stats": (
        "newsletter.cli.stats:stats",
        "Deliveries, unsubscribes, complaints and clicks per signal and link for a sent dispatch.",
    ),
    "subscribers": ("newsletter.cli.subscribers:subscribers", "The people the dispatch goes to."),
    "weekly": (
        "newsletter.cli.send:weekly",
        "What cron runs: collect, build this week's dispatch, send it once approved.",
    ),
}
