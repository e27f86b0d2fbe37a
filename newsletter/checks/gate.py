"""The pre-flight gate `newsletter send` passes through: any error stops the send unless forced."""

from __future__ import annotations

from collections.abc import Callable

from newsletter.checks.preflight import Tools, run_checks
from newsletter.checks.report import Report
from newsletter.dispatch import load_dispatch
from newsletter.errors import DispatchError
from newsletter.settings import Settings
from newsletter.store import Store
from newsletter.weeks import Week


class PreflightError(DispatchError):
    """The dispatch failed a pre-flight check; nothing was sent."""


def preflight(
    store: Store,
    settings: Settings,
    week: Week,
    *,
    force: bool = False,
    dry_run: bool = False,
    tools: Tools | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> Report | None:
    """Check the week's message before a send; None when there is nothing left to check.

    A sent dispatch is skipped (the send has nothing to do), as is a missing one (the send
    reports that itself). Links are not fetched here: a slow site must not hold up a send.
    """
    dispatch = load_dispatch(store, settings, week)
    if dispatch is None or dispatch.status == "sent":
        return None
    report = run_checks(store, settings, week, tools=tools, progress=progress)
    if report.errors and not (force or dry_run):
        first = report.errors[0]
        more = f" (and {len(report.errors) - 1} more)" if len(report.errors) > 1 else ""
        raise PreflightError(
            f"pre-flight checks failed, nothing sent: {first.check}: {first.message}{more};"
            " run `newsletter check` for every finding and fix, or send with --force"
        )
    return report
