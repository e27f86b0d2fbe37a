"""The email in a real headless Chromium (Debian's, never a downloaded one): phone and desktop
widths, no sideways scrolling, tappable buttons, readable type, a visible unsubscribe link.
"""

from __future__ import annotations

from typing import Any

import pytest

from newsletter.settings import Settings

pytestmark = pytest.mark.browser


@pytest.fixture
def email_html(settings: Settings) -> str:
    from test_render_email import make_dispatch, make_signal, personal

    signals = [make_signal(i) for i in range(1, 12)]
    # the worst case for a narrow screen: one unbreakable run of characters
    signals.append(make_signal(12, title="Supercalifragilistic" * 6, why_now="x" * 200))
    note = "A **long** week: https://example.org/" + "a" * 120
    return personal(make_dispatch(signals, settings, note=note), settings)[0]


@pytest.mark.parametrize("width", [375, 600])
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_email_fits_the_screen(browser: Any, email_html: str, width: int, scheme: str) -> None:
    page = browser.new_page(viewport={"width": width, "height": 900}, color_scheme=scheme)
    try:
        page.set_content(email_html, wait_until="load")
        scroll_width, inner_width = page.evaluate(
            "[document.documentElement.scrollWidth, window.innerWidth]"
        )
        assert scroll_width <= inner_width, f"{scroll_width}px of content in {inner_width}px"

        unsubscribe = page.get_by_role("link", name="Unsubscribe")
        unsubscribe.scroll_into_view_if_needed()
        assert unsubscribe.is_visible()
        box = unsubscribe.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width
        assert box["height"] >= 24  # padded to a tappable size

        buttons = page.get_by_role("link", name="Read at arXiv cs.LG")
        assert buttons.count() == 12
        heights = [b["height"] for b in buttons.evaluate_all(
            "els => els.map(e => e.closest('table').getBoundingClientRect().toJSON())"
        )]  # fmt: skip
        assert min(heights) >= 44, heights

        body_size = page.locator(".sig p").nth(2).evaluate("e => getComputedStyle(e).fontSize")
        assert body_size == "16px"
        if width == 375:  # one column on a phone: the card spans the screen
            card = page.locator(".card").nth(2).bounding_box()
            assert card is not None and card["width"] >= 360
    finally:
        page.close()


def test_dark_mode_changes_the_colours(browser: Any, email_html: str) -> None:
    colours = {}
    for scheme in ("light", "dark"):
        page = browser.new_page(viewport={"width": 600, "height": 900}, color_scheme=scheme)
        page.set_content(email_html, wait_until="load")
        colours[scheme] = (
            page.locator(".card")
            .nth(2)
            .evaluate("e => getComputedStyle(e.querySelector('table') || e).backgroundColor")
        )
        page.close()
    assert colours["light"] != colours["dark"]


CONTRAST_JS = """
() => {
  const rgb = s => (s.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const f = c => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = el => {
    for (let e = el; e; e = e.parentElement) {
      const c = rgb(getComputedStyle(e).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] > 0)) return c.slice(0, 3);
      const attr = e.getAttribute && e.getAttribute("bgcolor");
      if (attr) {
        const d = document.createElement("div");
        d.style.color = attr;
        document.body.appendChild(d);
        const v = rgb(getComputedStyle(d).color);
        d.remove();
        return v;
      }
    }
    return [255, 255, 255];
  };
  const worst = [];
  const text = ".sig p, .sig li, .sig h2 a, .sig h3, .foot div, .foot a, .btn a";
  for (const el of document.querySelectorAll(text)) {
    if (!el.textContent.trim() || el.closest(".preheader")) continue;
    const a = lum(rgb(getComputedStyle(el).color)), b = lum(background(el));
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    worst.push([ratio, el.tagName + ": " + el.textContent.trim().slice(0, 30)]);
  }
  worst.sort((x, y) => x[0] - y[0]);
  return worst.slice(0, 3);
}
"""


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_text_has_good_contrast(browser: Any, email_html: str, scheme: str) -> None:
    """WCAG AA: at least 4.5:1 for every piece of body, footer and button text."""
    page = browser.new_page(viewport={"width": 600, "height": 900}, color_scheme=scheme)
    try:
        page.set_content(email_html, wait_until="load")
        worst = page.evaluate(CONTRAST_JS)
    finally:
        page.close()
    assert worst, "no text found"
    assert worst[0][0] >= 4.5, worst
