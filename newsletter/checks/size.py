"""Size: Gmail clips an HTML body over about 102 KB, hiding the footer and unsubscribe link."""

from __future__ import annotations

from newsletter.checks.parsed import Parsed
from newsletter.checks.report import Finding, error, info, warning

CLIP_BYTES = 102 * 1024
WARN_BYTES = 90 * 1024
FIX = "drop a few signals (NEWSLETTER_MAX_SIGNALS) or shorten their summaries"


def check_size(message: Parsed) -> list[Finding]:
    size = len(message.html.encode("utf-8"))
    kb = f"{size / 1024:.1f} KB"
    if size > CLIP_BYTES:
        return [error("size", f"HTML is {kb}: Gmail clips messages over 102 KB", FIX)]
    if size > WARN_BYTES:
        return [warning("size", f"HTML is {kb}: close to Gmail's 102 KB clipping limit", FIX)]
    return [info("size", f"HTML is {kb} (Gmail clips over 102 KB); whole message {_kb(message)}")]


def _kb(message: Parsed) -> str:
    return f"{len(message.raw) / 1024:.1f} KB"
