"""Pre-flight checks: what would go wrong with this dispatch in real inboxes, before sending."""

from newsletter.checks.preflight import Tools, check_message, run_checks, sample_message
from newsletter.checks.report import Finding, Level, Report

__all__ = ["Finding", "Level", "Report", "Tools", "check_message", "run_checks", "sample_message"]
