"""The report as a page of its own, for the live preview's panel beside the phone and desktop."""

from __future__ import annotations

from html import escape

from newsletter.checks.preflight import run_checks
from newsletter.errors import NewsletterError
from newsletter.settings import Settings
from newsletter.store import Store
from newsletter.weeks import Week


def checks_page(store: Store, settings: Settings, week: Week) -> str:
    """Every check except `--links` (no network from a preview); a failure is shown, not raised."""
    try:
        body = run_checks(store, settings, week).to_html()
    except NewsletterError as exc:
        body = f"<p>The checks cannot run: {escape(str(exc))}</p>"
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        "<title>Pre-flight checks</title></head>"
        f'<body style="margin:8px;background:#fff">{body}</body></html>'
    )
