"""The pre-flight gate `newsletter send` passes through: any error stops the send unless forced."""

from __future__ import annotations

from collections.abc import Callable

from newsletter.checks.preflight import Tools, run_checks
from newsletter.checks.report import Report
from newsletter.dispatch.build import load_dispatch
from newsletter.errors import DispatchError
from newsletter.settings import Settings
from newsletter.store import Store
from newsletter.store.dispatches import FROZEN
from newsletter.weeks import Week


class PreflightError(DispatchError):
    """The dispatch failed a pre-flight check; nothing was sent. `report` has every finding."""

    def __init__(self, message: str, report: Report) -> None:
        super().__init__(message)
        self.report = report


def preflight(
    store: Store,
    settings: Settings,
    week: Week,
    *,
    force: bool = False,
    dry_run: bool = False,
    unapproved: bool = False,
    tools: Tools | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> Report | None:
    """Check the week's message before a send; None when there is nothing left to check.

    Skipped when the dispatch is missing or unapproved (the send refuses those itself), sent
    (nothing to do) or part-sent: a resumed send mails the frozen copy some readers already
    have, and holding back the rest would not unsend it. Links are not fetched: a slow site
    must not hold up a send.
    """
    dispatch = load_dispatch(store, settings, week)
    if dispatch is None or dispatch.status in FROZEN:
        return None
    if dispatch.status != "approved" and not unapproved:
        return None  # the send refuses an unapproved dispatch itself, before any work
    report = run_checks(store, settings, week, tools=tools, progress=progress)
    if report.errors and not (force or dry_run):
        first = report.errors[0]
        more = f" (and {len(report.errors) - 1} more)" if len(report.errors) > 1 else ""
        raise PreflightError(
            f"pre-flight checks failed, nothing sent: {first.check}: {first.message}{more};"
            " run `newsletter check` for every finding and fix, or send with --force",
            report,
        )
    return report
