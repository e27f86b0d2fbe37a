"""The preferences page in headless Chromium (Debian's) with JavaScript off: at 375 px it
does not scroll sideways and every control can be tapped; a reader unticks a section, pauses
and saves by clicking; axe-core finds no serious or critical problem in light or dark mode."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from hostile import settings_in
from test_web_live import WEB_ENV, Live, serving

from newsletter.models import Subscriber
from newsletter.readers.subscriptions import add_subscriber
from newsletter.store import Store
from newsletter.tokens import preferences_token

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    settings = settings_in(tmp_path_factory.mktemp("prefs"), **WEB_ENV)
    Store.open(settings.db).close()
    with serving(settings) as server:
        yield server


def _path(live: Live, email: str) -> tuple[int, str]:
    reader = add_subscriber(live.store, email, confirmed=True).subscriber
    return (
        reader.id,
        f"/preferences/{preferences_token(live.secret, reader.id, reader.token_nonce)}",
    )


def test_the_page_works_at_375_px_without_javascript(browser: Any, live: Live) -> None:
    reader_id, path = _path(live, "phone@example.org")
    context = browser.new_context(
        java_script_enabled=False, viewport={"width": 375, "height": 740}, is_mobile=True
    )
    page = context.new_page()
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security" in m.text else 0)
    page.goto(live.url + path)
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    for control in page.locator(".check").all():  # a row a thumb can hit
        assert control.bounding_box()["height"] >= 44
    page.get_by_label("Markets").uncheck()  # by its label, as a reader taps it
    page.get_by_label("Pause for 2 weeks").check()
    page.get_by_role("button", name="Save my preferences").click()
    assert "Your preferences are saved." in page.locator("main").inner_text()
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    assert (
        not page.get_by_label("Markets").is_checked()
        and page.get_by_label("AI", exact=True).is_checked()
    )
    row = live.store.subscribers.get(reader_id)
    assert row is not None
    reader = Subscriber.from_row(row)
    assert not reader.wants("Markets") and reader.paused_until is not None
    page.get_by_role("button", name="Unsubscribe").click()
    assert page.locator("h1").inner_text() == "You are unsubscribed"
    assert violations == []
    context.close()


def test_axe_finds_no_serious_or_critical_problem(browser: Any, live: Live) -> None:
    _, path = _path(live, "axe@example.org")
    axe = Axe()  # axe-core bundled with the package: nothing is fetched
    context = browser.new_context(java_script_enabled=True)  # axe itself is a script
    page = context.new_page()
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        page.goto(live.url + path)
        results = axe.run(page)
        bad = [v for v in results.response["violations"] if v["impact"] in ("serious", "critical")]
        assert not bad, f"{path} ({scheme}):\n{results.generate_report()}"
    context.close()
