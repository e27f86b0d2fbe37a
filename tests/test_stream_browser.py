"""The site in headless Chromium (Debian's): no sideways scrolling at 375 and 1280 px, dark
mode, axe-core finds no serious or critical problem, the subscribe box works by clicking with
JavaScript off, the CSP is never violated, and hostile pages run nothing even without a CSP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from hostile import settings_in
from test_stream import SEED_000, _id, publish_sample
from test_stream_hostile import Hostile, hostile  # noqa: F401 - the module's fixture
from test_web_live import WEB_ENV, Live, serving

from newsletter.site.build import build_site
from newsletter.store import Store

pytestmark = pytest.mark.browser

WIDTHS = (375, 1280)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    settings = settings_in(tmp_path_factory.mktemp("browser"), **WEB_ENV)
    store = Store.open(settings.db)
    publish_sample(store, settings)
    build_site(store, settings)
    store.close()
    with serving(settings) as server:
        yield server


def _signal_path(live: Live) -> str:
    signal = live.store.signals.get(_id(live.store, SEED_000))
    assert signal is not None
    return f"/signals/{signal.slug}/"


def _pages(live: Live) -> list[str]:
    return ["/signals/", _signal_path(live), "/", "/archive/", "/archive/2026-W24/"]


def test_no_sideways_scrolling_at_phone_and_desktop_widths(browser: Any, live: Live) -> None:
    for width in WIDTHS:
        context = browser.new_context(java_script_enabled=False, viewport={"width": width,
                                      "height": 800}, is_mobile=width < 500)  # fmt: skip
        page = context.new_page()
        for path in _pages(live):
            page.goto(live.url + path)
            scroll = page.evaluate("document.documentElement.scrollWidth")
            assert scroll <= width, f"{path} at {width} px scrolls sideways ({scroll} px)"
        context.close()


def test_dark_mode_and_one_font_family(browser: Any, live: Live) -> None:
    context = browser.new_context(color_scheme="dark")
    page = context.new_page()
    families = set()
    for path in ("/signals/", _signal_path(live), "/", "/archive/"):
        page.goto(live.url + path)
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(13, 17, 23)", (path, background)
        families.add(page.evaluate("getComputedStyle(document.body).fontFamily"))
        for selector in ("h1", "button"):
            families.add(page.evaluate(f"getComputedStyle(document.querySelector('{selector}'))"
                                       ".fontFamily"))  # fmt: skip
    assert len(families) == 1 and "serif" not in next(iter(families)).replace("sans-serif", "")
    context.close()


def test_axe_finds_no_serious_or_critical_problem(browser: Any, live: Live) -> None:
    axe = Axe()  # axe-core bundled with the package: nothing is fetched
    context = browser.new_context()
    page = context.new_page()
    for path in ("/signals/", _signal_path(live), "/"):
        for scheme in ("light", "dark"):
            page.emulate_media(color_scheme=scheme)
            page.goto(live.url + path)
            results = axe.run(page)
            bad = [v for v in results.response["violations"]
                   if v["impact"] in ("serious", "critical")]  # fmt: skip
            assert not bad, f"{path} ({scheme}):\n{results.generate_report()}"
    context.close()


def test_subscribe_by_clicking_on_a_signal_page(browser: Any, live: Live) -> None:
    context = browser.new_context(java_script_enabled=False, viewport={"width": 375,
                                  "height": 740}, is_mobile=True)  # fmt: skip
    page = context.new_page()
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security" in m.text else 0)
    page.goto(live.url + _signal_path(live))
    page.fill("#subscribe-email", "clicker@example.org")
    page.click(".subscribe button[type=submit]")
    assert page.locator("h1").inner_text() == "Check your inbox"
    assert live.status("clicker@example.org") == "pending"
    assert violations == []
    context.close()


def test_the_archive_page_hides_view_in_browser_and_leads_back(browser: Any, live: Live) -> None:
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(live.url + "/archive/2026-W24/")
    assert not page.get_by_text("View in browser").first.is_visible()
    page.get_by_role("link", name="← All issues").click()
    assert page.url.rstrip("/").endswith("/archive")
    assert "Week of Jun 8, 2026" in page.locator("main").inner_text()
    context.close()


def test_hostile_pages_run_nothing_even_without_a_csp(browser: Any, hostile: Hostile) -> None:  # noqa: F811
    context = browser.new_context()  # JavaScript on, opened from disk: no CSP to help
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(
        "file:") else route.abort())  # fmt: skip
    files = [hostile.folder / "signals" / "index.html", hostile.folder / "2026-W24" / "index.html"]
    files += [hostile.folder / "signals" / str(s.slug) / "index.html" for s in hostile.signals]
    for file in files:
        page.goto(file.as_uri())
        page.mouse.move(200, 300)
        page.keyboard.press("Tab")
    assert dialogs == [] and errors == []
    context.close()
