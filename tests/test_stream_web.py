"""The signal stream served by the real web service (waitress on 127.0.0.1, over HTTP):
status codes, redirects, headers, and the subscribe box on a signal page signing a reader up
end to end (form post -> confirmation mail -> confirm)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from test_stream import SEED_000, SEED_002, UNANNOTATED, _id, publish_sample
from test_web_live import WEB_ENV, Live, link_path, serving

from newsletter.settings import load_settings
from newsletter.site.publish import set_published
from newsletter.store import Store

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def live(env: dict[str, str]) -> Iterator[Live]:
    settings = load_settings({**env, **WEB_ENV}, env_file=None)
    store = Store.open(settings.db)
    publish_sample(store, settings)
    store.close()
    with serving(settings) as server:
        yield server


def _slug(live: Live, arxiv_id: str) -> str:
    signal = live.store.signals.get(_id(live.store, arxiv_id))
    assert signal is not None and signal.slug
    return signal.slug


def test_subscribe_box_on_a_signal_page_signs_a_reader_up(live: Live) -> None:
    path = f"/signals/{_slug(live, SEED_000)}/"
    page = live.client.get(path)
    assert page.status_code == 200 and "The Brief · Weekly Dispatch" in page.text
    assert "nl_csrf" in page.cookies  # the box is our own CSRF-protected form
    form = re.search(r'<form method="post" action="([^"]+)"', page.text)
    assert form and form.group(1) == "/subscribe"
    token = CSRF.search(page.text)
    assert token
    answer = live.client.post(
        "/subscribe",
        data={"email": "reader.of.signals@example.org", "website": "", "csrf_token": token[1]},
    )
    assert answer.status_code == 200 and "Check your inbox" in answer.text
    assert live.status("reader.of.signals@example.org") == "pending"
    [mail] = live.mails("reader.of.signals@example.org")
    confirmed = live.confirm(link_path(mail, "confirm"))
    assert confirmed.status_code == 200 and "You are subscribed" in confirmed.text
    assert live.status("reader.of.signals@example.org") == "active"
    # a post without the page's token is refused, as on the sign-up page
    forged = httpx.post(live.url + "/subscribe", data={"email": "forged@example.org"})
    assert forged.status_code == 403 and live.status("forged@example.org") is None


def test_pages_answer_with_the_right_status_and_headers(live: Live) -> None:
    seed = _slug(live, SEED_000)
    ok = live.client.get(f"/signals/{seed}/")
    assert ok.status_code == 200
    assert ok.headers["content-type"].startswith("text/html")
    csp = ok.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp
    assert ok.headers["cache-control"] == "private, no-cache"
    assert ok.headers["x-frame-options"] == "DENY"
    # no trailing slash: the canonical address
    bare = httpx.get(f"{live.url}/signals/{seed}")
    assert bare.status_code in (301, 308) and bare.headers["location"].endswith(f"/{seed}/")
    hidden = _slug(live, UNANNOTATED)
    for path in (f"/signals/{hidden}/", "/signals/nothing-here-12345678/", "/signals/page/9/",
                 "/signals/category/zoology/", "/signals/week/2026-W99/",
                 "/signals/%2e%2e/%2e%2e/newsletter.db"):  # fmt: skip
        assert live.client.get(path).status_code == 404, path
    assert live.client.get("/signals/page/1/").headers["location"] == "/signals/"
    for path, kind in (("/signals/feed.xml", "application/atom+xml"),
                       ("/signals/feed.json", "application/feed+json"),
                       ("/sitemap.xml", "application/xml")):  # fmt: skip
        answer = live.client.get(path)
        assert answer.status_code == 200 and answer.headers["content-type"].startswith(kind)
        assert answer.headers["cache-control"] == "public, max-age=300"
    for path in ("/signals/", "/signals/category/ai/", "/signals/week/2026-W21/"):
        assert live.client.get(path).status_code == 200, path


def test_a_change_shows_at_once_and_an_old_slug_redirects(live: Live) -> None:
    seed = _slug(live, SEED_002)
    assert live.client.get(f"/signals/{seed}/").status_code == 200
    set_published(live.store, live.settings, [_id(live.store, SEED_002)], public=False)
    assert live.client.get(f"/signals/{seed}/").status_code == 404
    assert seed not in live.client.get("/signals/feed.json").text
    set_published(live.store, live.settings, [_id(live.store, SEED_002)], public=True)
    signal_id = _id(live.store, SEED_002)
    live.store.signals.update(signal_id, {"title": "States, not tokens"})
    moved = live.client.get(f"/signals/{seed}/")
    fresh = live.store.signals.get(signal_id)
    assert fresh is not None
    assert moved.status_code == 301 and moved.headers["location"] == f"/signals/{fresh.slug}/"
    assert live.client.get(moved.headers["location"]).status_code == 200


def test_a_static_pages_box_opens_the_sign_up_form_with_the_address(live: Live) -> None:
    """Without an allowed origin, the static build's box is a GET form to our sign-up page."""
    page = live.client.get("/", params={"email": 'ada@example.org"><b>x</b>'})
    assert page.status_code == 200
    assert 'value="ada@example.org&#34;&gt;&lt;b&gt;x&lt;/b&gt;"' in page.text
    assert CSRF.search(page.text)  # and it is our protected form
