"""The sign-up flow in headless Chromium (Debian's), clicking the real form on a phone-sized
screen with JavaScript off: sign up -> confirmation mail -> confirm -> unsubscribe button."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from test_web_live import Live, link_path

from newsletter.tokens import unsubscribe_token

pytestmark = pytest.mark.browser


def test_sign_up_confirm_and_unsubscribe_by_clicking(browser, live: Live) -> None:
    context = browser.new_context(  # type: ignore[attr-defined]
        java_script_enabled=False, viewport={"width": 375, "height": 740}, is_mobile=True
    )
    page = context.new_page()
    page.goto(live.url + "/")
    assert page.locator("h1").inner_text() == live.settings.tagline
    # nothing wider than the phone's screen, and the honeypot is out of sight
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    box = page.locator(".hp").bounding_box()
    assert box is not None and box["x"] + box["width"] <= 0
    page.fill("#email", "Phone.Reader@Example.org")
    page.fill("#name", "Phone Reader")
    page.click("button[type=submit]")
    assert page.locator("h1").inner_text() == "Check your inbox"
    assert live.status("phone.reader@example.org") == "pending"

    [mail] = live.mails()
    page.goto(live.url + link_path(mail, "confirm"))
    assert live.status("phone.reader@example.org") == "pending"  # opening the link: a button
    page.click("button[type=submit]")
    assert page.locator("h1").inner_text() == "You are subscribed"
    assert live.status("phone.reader@example.org") == "active"

    row = live.store.subscribers.get_by_email("phone.reader@example.org")
    assert row is not None
    page.goto(
        live.url + f"/unsubscribe/{unsubscribe_token(live.secret, row['id'], row['token_nonce'])}"
    )
    assert live.status("phone.reader@example.org") == "active"  # opening the page is not enough
    page.click("button[type=submit]")
    assert page.locator("h1").inner_text() == "You are unsubscribed"
    assert urlsplit(page.url).path.startswith("/unsubscribe/")
    assert live.status("phone.reader@example.org") == "unsubscribed"
    context.close()


def test_a_bad_address_is_shown_again_with_the_error(browser, live: Live) -> None:
    context = browser.new_context()  # type: ignore[attr-defined]
    page = context.new_page()
    page.goto(live.url + "/")
    # skip the browser's own check, as a bot or an old browser would
    page.eval_on_selector("form", "f => f.setAttribute('novalidate', '')")
    page.fill("#email", "no-at-sign.example.org")
    page.fill("#name", "<b>Bold</b>")
    page.click("button[type=submit]")
    assert "does not look like an email address" in page.locator(".error").inner_text()
    assert page.input_value("#email") == "no-at-sign.example.org"
    assert page.input_value("#name") == "<b>Bold</b>"  # shown as text, not markup
    assert page.locator("b").count() == 0
    assert live.store.subscribers.counts()["pending"] == 0
    context.close()
