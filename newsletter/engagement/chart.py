"""The report as a page: an SVG bar chart of clicks per signal (pygal) and the tables, with no
JavaScript. pygal is imported here only, by `stats --html` and the preview's panel: it costs
~120 ms, which no other command pays."""

from __future__ import annotations

import html
from typing import Any

from newsletter.dispatch.render import make_environment
from newsletter.engagement.recorder import maintain
from newsletter.engagement.stats import (
    OPENS_LABEL,
    TRACKING_WORDS,
    DispatchFigures,
    figures,
    latest_week,
)
from newsletter.errors import NewsletterError
from newsletter.settings import Settings
from newsletter.store import Store
from newsletter.weeks import Week

SVG = "http://www.w3.org/2000/svg"
HUMAN_COLOUR = "#1f4e79"
AUTOMATED_COLOUR = "#a0aec0"


def _no_script(root: Any) -> Any:
    """pygal writes its tooltip configuration as a <script>, whatever `js` says: remove it."""
    for parent in root.iter():
        for child in list(parent):
            if str(child.tag).rsplit("}", 1)[-1] == "script":
                parent.remove(child)
    return root


def chart_svg(figures: DispatchFigures, settings: Settings) -> str:
    """Human and automated clicks of each signal, stacked, most followed first."""
    import pygal
    from pygal.style import Style

    accent = settings.accent_color or HUMAN_COLOUR
    signals = figures.signals[::-1]  # pygal draws the first bar at the bottom
    style = Style(
        background="#ffffff",
        plot_background="#ffffff",
        foreground="#1d2430",
        foreground_strong="#1d2430",
        foreground_subtle="#4a5568",
        colors=(accent, AUTOMATED_COLOUR),
        font_family="-apple-system, 'Segoe UI', Helvetica, Arial, sans-serif",
        value_font_size=12,
        label_font_size=12,
    )
    chart = pygal.HorizontalStackedBar(
        style=style,
        js=[],
        disable_xml_declaration=True,
        width=900,
        height=max(220, 90 + 36 * len(signals)),
        show_legend=True,
        legend_at_bottom=True,
        print_values=True,
        print_zeroes=False,
        truncate_label=48,
        title=f"Clicks per signal · {figures.week}",
        no_data_text="No signals",
    )
    top = max((s.human + s.automated for s in signals), default=0)
    step = max(1, -(-top // 8))
    chart.y_labels = list(range(0, max(top, 1) + step, step))  # whole clicks, never 0.1
    chart.add_xml_filter(_no_script)
    chart.x_labels = [s.title for s in signals]
    chart.add("human", [s.human for s in signals])
    chart.add("automated", [s.automated for s in signals])
    svg: str = chart.render(is_unicode=True)
    return svg


def stats_page(figures: DispatchFigures, settings: Settings) -> str:
    """A whole HTML page (no script; its CSP allows none)."""
    env = make_environment()
    return env.get_template("engagement/stats.html.j2").render(
        f=figures,
        settings=settings,
        chart=chart_svg(figures, settings) if figures.tracking != "off" else "",
        tracking=TRACKING_WORDS[figures.tracking],
        opens_label=OPENS_LABEL,
    )


def previous_page(store: Store, settings: Settings, week: Week) -> str:
    """The figures of the newest dispatch sent before `week`: the preview's panel beside the
    draft, so the editor sees what readers followed last time."""
    earlier = latest_week(store, before=str(week))
    if earlier is None:
        return _note("No dispatch has gone out before this one: nothing to show yet.")
    try:
        maintain(store, settings)
        return stats_page(figures(store, settings, Week.parse(earlier)), settings)
    except NewsletterError as exc:
        return _note(f"The figures cannot be shown: {exc}")


def _note(text: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Engagement</title>'
        f'</head><body style="margin:8px;font:14px sans-serif"><p>{html.escape(text)}</p>'
        "</body></html>"
    )
