"""Pre-flight checks: what would go wrong with this dispatch in real inboxes, before sending.

The names below load on first use: `newsletter check --help` needs only the list of checks
(`report.CHECKS`), not the DNS, DKIM and browser machinery behind them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from newsletter.checks.preflight import Tools, check_message, run_checks, sample_message
    from newsletter.checks.report import Finding, Level, Report

__all__ = ["Finding", "Level", "Report", "Tools", "check_message", "run_checks", "sample_message"]

_HOMES = {
    "Tools": "preflight",
    "check_message": "preflight",
    "run_checks": "preflight",
    "sample_message": "preflight",
    "Finding": "report",
    "Level": "report",
    "Report": "report",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
