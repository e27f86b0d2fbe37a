"""Rendering: the email in headless Chromium at phone (375 px) and desktop (600 px) widths.

Drives the system Chromium through Playwright (never a downloaded browser). Nothing is fetched:
every request the email makes is refused, so the check is offline and fast.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from newsletter.checks.report import Finding, error, info

PHONE, DESKTOP = 375, 600
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
_INSTALL = "install Chromium (Debian/Ubuntu: sudo apt-get install chromium)"
#: the `render` extra carries Playwright, which drives that Chromium (it downloads no browser)
RENDER_EXTRA = (
    "install the render extra: pip install 'newsletter[render]'"
    " (in a checkout: .venv/bin/pip install -e '.[render]')"
)

# How wide the page is, what sticks out, and which text blocks sit side by side.
_MEASURE = """() => {
  const vw = window.innerWidth;
  const doc = document.documentElement;
  const overflow = Math.max(doc.scrollWidth, document.body.scrollWidth) - vw;
  const name = (e) => e.tagName.toLowerCase() +
    (e.getAttribute('class') ? '.' + e.getAttribute('class').split(/\\s+/)[0] : '');
  const wide = [];
  for (const e of document.body.querySelectorAll('*')) {
    const r = e.getBoundingClientRect();
    if (r.width > 0 && r.right > vw + 1) wide.push(name(e) + ' ' + Math.round(r.width) + 'px');
    if (wide.length >= 3) break;
  }
  const blocks = [];
  for (const e of document.body.querySelectorAll('*')) {
    const style = getComputedStyle(e);
    if (style.display.startsWith('inline') || style.display === 'none') continue;
    const own = [...e.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
    if (!own) continue;
    const r = e.getBoundingClientRect();
    if (r.width > 0 && r.height > 0) blocks.push([r.left, r.right, r.top, r.bottom, name(e)]);
  }
  let side = null;
  for (let i = 0; i < blocks.length && !side; i++) {
    for (let j = i + 1; j < blocks.length; j++) {
      const [a, b] = [blocks[i], blocks[j]];
      const vertical = Math.min(a[3], b[3]) - Math.max(a[2], b[2]);
      const apart = a[1] <= b[0] + 1 || b[1] <= a[0] + 1;
      if (vertical > 4 && apart) { side = [a[4], b[4]]; break; }
    }
  }
  return {width: vw, overflow: overflow, wide: wide, side: side};
}"""


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def measure(html: str, chromium: str, screenshots: Path | None = None) -> dict[int, dict[str, Any]]:
    """Layout facts at each width; writes `email-375.png` and `email-600.png` when asked."""
    from playwright.sync_api import sync_playwright

    results: dict[int, dict[str, Any]] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            for width in (PHONE, DESKTOP):
                page = browser.new_page(viewport={"width": width, "height": 800})
                page.route("**/*", lambda route: route.abort())
                page.set_content(html, wait_until="load")
                results[width] = page.evaluate(_MEASURE)
                if screenshots is not None:
                    screenshots.mkdir(parents=True, exist_ok=True)
                    page.screenshot(path=str(screenshots / f"email-{width}.png"), full_page=True)
                page.close()
        finally:
            browser.close()
    return results


def check_render(html: str, chromium: str | None, screenshots: Path | None = None) -> list[Finding]:
    if chromium is None:
        return [info("render", "rendering not checked: Chromium is not installed", _INSTALL)]
    try:
        import playwright  # noqa: F401
    except ImportError:
        return [
            info(
                "render",
                "rendering not checked: the playwright package is not installed",
                RENDER_EXTRA,
            )
        ]
    try:
        layout = measure(html, chromium, screenshots)
    except Exception as exc:  # Playwright raises its own Error types from the browser
        return [info("render", f"rendering not checked: Chromium failed ({exc})".splitlines()[0])]
    found: list[Finding] = []
    for width, facts in layout.items():
        if facts["overflow"] > 0:
            culprits = ", ".join(facts["wide"]) or "the page"
            found.append(
                error(
                    "render",
                    f"at {width} px the email scrolls sideways by {facts['overflow']} px"
                    f" (wider: {culprits})",
                    "drop fixed widths over 375 px; let images and tables shrink (max-width:100%)",
                )
            )
    side = layout[PHONE]["side"]
    if side:
        found.append(
            error(
                "render",
                f"at {PHONE} px text sits in more than one column ({side[0]} beside {side[1]})",
                "stack columns on phones (MJML columns do under 480 px)",
            )
        )
    if not found:
        found.append(
            info(
                "render",
                f"no sideways scrolling at {PHONE} or {DESKTOP} px; one column on the phone",
            )
        )
    if screenshots is not None:
        found.append(info("render", f"screenshots written to {screenshots}"))
    return found
