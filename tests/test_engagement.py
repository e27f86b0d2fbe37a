"""Click counting in-process: tokens, agents, bursts, retention, the report and its chart, the
email's links in every mode, size and spam score with tracking on."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

import pytest

from newsletter.checks.parsed import Parsed
from newsletter.checks.size import CLIP_BYTES, WARN_BYTES
from newsletter.checks.spam import spam_score
from newsletter.delivery.compose import Composer
from newsletter.delivery.deliver import send_dispatch
from newsletter.delivery.message import Message
from newsletter.delivery.senders import MemorySender
from newsletter.demo import SAMPLE_WEEK, load_sample
from newsletter.dispatch.archive import archived_issues
from newsletter.dispatch.build import approve, build_dispatch
from newsletter.dispatch.render import render_dispatch
from newsletter.engagement import agents, bursts
from newsletter.engagement.links import link_key, parse, reader_of, reader_part, tracker_for
from newsletter.engagement.recorder import Recorder, fold_old, settle
from newsletter.engagement.redirect import PIXEL, Redirects, location
from newsletter.models import Subscriber
from newsletter.readers.subscriptions import add_subscriber
from newsletter.settings import Settings
from newsletter.store import Store
from tests.conftest import require_tool
from tests.test_render_email import make_dispatch, make_signal

BROWSER = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/126.0 Safari/537.36"
)
SECRET = "test-secret-key-0123456789"
READER = Subscriber(7, "ada@example.org", "Ada", "active", "nonce")


def test_tokens_are_short_strict_and_bound_to_their_dispatch() -> None:
    key = link_key(SECRET, 3, 17, "read", "https://arxiv.org/abs/2606.07527")
    assert len(key) == 12 and re.fullmatch(r"[A-Za-z0-9_-]+", key)
    assert key == link_key(SECRET, 3, 17, "read", "https://arxiv.org/abs/2606.07527")
    assert key != link_key(SECRET, 4, 17, "read", "https://arxiv.org/abs/2606.07527")
    assert key != link_key("another-secret", 3, 17, "read", "https://arxiv.org/abs/2606.07527")
    part = reader_part(SECRET, 3, 42)
    assert part.startswith(".") and len(part) == 17
    assert parse(key + part) == (key, part[1:])
    assert reader_of(SECRET, 3, part[1:]) == 42
    assert reader_of(SECRET, 4, part[1:]) is None  # another dispatch's reader part
    assert reader_of("another-secret", 3, part[1:]) is None
    for bad in ("", key[:-1], key + "=", key + ".", key + part + "x", key + "/x", "é" * 12):
        assert parse(bad) is None, bad


@pytest.mark.parametrize(
    ("method", "agent", "expected"),
    [
        ("GET", BROWSER, (True, None)),
        (
            "GET",
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15"
            " (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
            (True, None),
        ),
        (
            "GET",
            "Mozilla/5.0 (X11; Linux x86_64; rv:126.0) Gecko/20100101 Firefox/126.0",
            (True, None),
        ),
        ("HEAD", BROWSER, (False, "head")),
        ("GET", "", (False, "agent")),
        ("GET", "curl/8.5.0", (False, "agent")),
        ("GET", "python-httpx/0.27.0", (False, "agent")),
        ("GET", "Microsoft Office Existence Discovery", (False, "agent")),
        ("GET", "Mozilla/5.0 (compatible; Barracuda Sentinel)", (False, "agent")),
        ("GET", BROWSER.replace("Chrome/126.0", "HeadlessChrome/126.0"), (False, "agent")),
        (
            "GET",
            "Mozilla/5.0 (Windows NT 6.1; WOW64) AppleWebKit/537.36 (KHTML, like Gecko)"
            " Chrome/41.0 Safari/537.36 (compatible; Googlebot/2.1)",
            (False, "agent"),
        ),
        ("GET", "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", (False, "agent")),
    ],
)
def test_a_browser_is_told_from_a_machine(
    method: str, agent: str, expected: tuple[bool, str | None]
) -> None:
    assert agents.classify(method, agent) == expected


def _hit(n: int, at: float, key: str, *, visitor: str = "v", kind: str = "read") -> dict:
    return {
        "id": n,
        "at": at,
        "link_key": key,
        "visitor": visitor,
        "dispatch_id": 1,
        "kind": kind,
        "browser": 1,
        "reason": None,
        "burst": 0,
        "subscriber_id": None,
    }


def test_three_links_within_five_seconds_are_a_burst_and_two_are_not() -> None:
    person = [_hit(1, 100.0, "a"), _hit(2, 103.0, "b"), _hit(3, 109.0, "c")]
    marked, done = bursts.classify(person, due_before=None)
    assert marked == set() and [d[3] for d in done] == [True, True, True]
    scanner = [_hit(i, 200.0 + i * 0.1, k, visitor="s") for i, k in enumerate("abcdef", 10)]
    marked, done = bursts.classify(scanner, due_before=None)
    assert marked == {h["id"] for h in scanner}
    assert {(d[3], d[4]) for d in done} == {(False, "burst")}
    # the same link again and again, or the pixel, is not a burst of links
    again = [_hit(i, 300.0 + i * 0.1, "a", visitor="r") for i in range(20)]
    again += [_hit(99, 300.5, "p", visitor="r", kind="open")]
    again.sort(key=lambda h: h["at"])
    assert bursts.classify(again, due_before=None)[0] == set()


def test_a_burst_found_early_is_kept_for_hits_not_yet_due() -> None:
    hits = [_hit(1, 100.0, "a"), _hit(2, 101.0, "b"), _hit(3, 102.0, "c")]
    marked, done = bursts.classify(hits, due_before=100.5)
    assert marked == {1, 2, 3}
    assert [d[0] for d in done] == [1]  # only the due hit moves; the marks stay in the queue
    assert done[0][2] == 0  # the hour only (100 s after the epoch)


def test_a_location_header_is_never_injected() -> None:
    assert location("https://arxiv.org/abs/2606.07527") == "https://arxiv.org/abs/2606.07527"
    assert location("https://example.org/a b?q=ü") == "https://example.org/a%20b?q=%C3%BC"
    assert location("https://bücher.example/x") == "https://xn--bcher-kva.example/x"
    for bad in ("https://x.example/\r\nSet-Cookie: a=b", "https://x.example/\x00", "https://\x7f"):
        assert location(bad) is None


@pytest.fixture
def sent(store: Store, settings: Settings) -> Store:
    load_sample(store, now=datetime(2026, 6, 14, tzinfo=UTC))
    build_dispatch(store, settings, SAMPLE_WEEK)
    approve(store, settings, SAMPLE_WEEK)
    for address in ("a@example.org", "b@example.org"):
        add_subscriber(store, address, confirmed=True)
    send_dispatch(store, settings, MemorySender(), SAMPLE_WEEK)
    return store


def _follow(redirects: Redirects, store: Store, kind: str, *, agent: str = BROWSER) -> None:
    dispatch_id = store.dispatches.get(str(SAMPLE_WEEK))["id"]
    key = next(row["key"] for row in store.clicks.links(dispatch_id) if row["kind"] == kind)
    assert redirects.follow(key, "GET", agent, "192.0.2.1") is not None


def _redirects(store: Store, settings: Settings) -> tuple[Redirects, Recorder]:
    recorder = Recorder(lambda: store)
    return Redirects(settings, SECRET, b"salt", lambda: store, recorder), recorder


def test_stats_json_numbers_match_the_rows(run, sent: Store, settings: Settings) -> None:
    redirects, recorder = _redirects(sent, settings)
    for kind, agent in (("read", BROWSER), ("read", BROWSER), ("title", BROWSER), ("view", "")):
        _follow(redirects, sent, kind, agent=agent)
    recorder.close()
    settle(sent, everything=True)
    someone = sent.subscribers.get_by_email("b@example.org")
    sent.subscribers.set_status(someone["id"], "unsubscribed", actor="test")
    result = run("stats", "--week", str(SAMPLE_WEEK), "--json")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    conn = sqlite3.connect(settings.db)
    human, automated = conn.execute("SELECT sum(human), sum(1 - human) FROM clicks").fetchone()
    assert (shown["human"], shown["automated"]) == (human, automated) == (3, 1)
    per_link = dict(
        conn.execute(
            "SELECT l.key, sum(c.human) FROM clicks c JOIN tracked_links l ON l.key = c.link_key"
            " GROUP BY l.key"
        ).fetchall()
    )
    for link in shown["links"]:
        assert link["human"] == per_link.get(link["key"], 0)
    assert sum(s["human"] for s in shown["signals"]) == 3  # "view" belongs to no signal
    top = shown["signals"][0]
    assert (top["human"], top["position"]) == (3, 1)  # ranked: most followed first
    assert [s["human"] for s in shown["signals"]] == sorted(
        (s["human"] for s in shown["signals"]), reverse=True
    )
    delivered = conn.execute("SELECT count(*) FROM deliveries WHERE status = 'sent'").fetchone()[0]
    assert (shown["sent"], shown["delivered"], shown["failed"]) == (delivered, 2, 0)
    assert (shown["unsubscribes"], shown["complaints"], shown["opens"]) == (1, 0, None)
    conn.close()
    text = run("stats", "--week", str(SAMPLE_WEEK)).stdout
    assert "Clicks: 3 human · 1 automated" in text and "1 unsubscribed" in text


def test_stats_without_a_sent_dispatch_says_so(run, store: Store) -> None:
    result = run("stats")
    assert result.exit_code == 1 and "no dispatch has gone out yet" in result.output


def test_the_chart_is_valid_svg_with_no_script_and_escaped_titles(
    run, sent: Store, settings: Settings, tmp_path: Path
) -> None:
    hostile = '</svg><script>alert(1)</script> & "quotes"'
    sent.db.execute(
        "UPDATE signals SET title = ? WHERE id = (SELECT min(id) FROM signals)", [hostile]
    )
    redirects, recorder = _redirects(sent, settings)
    _follow(redirects, sent, "read")
    recorder.close()
    result = run("stats", "--week", str(SAMPLE_WEEK), "--html", "report/stats.html")
    assert result.exit_code == 0, result.output
    page = (tmp_path / "report" / "stats.html").read_text(encoding="utf-8")
    assert "<script" not in page.lower() and "javascript" not in page.lower()
    assert "Content-Security-Policy" in page
    svg = page[page.index("<svg") : page.index("</svg>") + len("</svg>")]
    root = ET.fromstring(svg)  # noqa: S314 - our own output; well-formed XML: a real SVG
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert not [e for e in root.iter() if e.tag.endswith("}script")]
    texts = " ".join(e.text or "" for e in root.iter() if e.tag.endswith("}text"))
    assert "Clicks per signal" in texts
    bars = [e for e in root.iter() if e.tag.endswith("}rect") and "rect" in e.get("class", "")]
    assert bars  # the human click drawn as a bar
    assert "alert(1)</script>" not in page  # the title is text wherever it shows
    assert "&lt;/svg&gt;&lt;script&gt;" in page


def _send_one(store: Store, settings: Settings) -> list[Message]:
    """The sample week sent to one reader with these settings: the message it got."""
    load_sample(store, now=datetime(2026, 6, 14, tzinfo=UTC))
    build_dispatch(store, settings, SAMPLE_WEEK)
    approve(store, settings, SAMPLE_WEEK)
    add_subscriber(store, "a@example.org", confirmed=True)
    sender = MemorySender()
    send_dispatch(store, settings, sender, SAMPLE_WEEK)
    return sender.sent


def test_off_leaves_every_url_untouched(store: Store, settings: Settings) -> None:
    (message,) = _send_one(store, settings.replace(tracking="off"))
    assert "/r/" not in message.html and "/r/" not in message.text
    assert 'href="https://arxiv.org/abs/2606.07527"' in message.html
    assert "counted" not in message.html and "click tracking" not in message.text
    assert store.db.execute("SELECT count(*) FROM tracked_links").fetchone()[0] == 0


def test_the_archive_copy_shows_where_links_lead_and_no_pixel(
    store: Store, settings: Settings
) -> None:
    opens = settings.replace(track_opens=True, tracking="per-reader")
    (message,) = _send_one(store, opens)
    assert f"{settings.public_url}/r/" in message.html
    assert 'width="1" height="1"' in message.html  # the open pixel
    (issue,) = archived_issues(store, opens)
    assert "/r/" not in issue.html
    assert 'href="https://arxiv.org/abs/2606.07527"' in issue.html
    assert 'width="1" height="1"' not in issue.html


def test_the_open_pixel_is_counted_but_never_per_reader(store: Store, settings: Settings) -> None:
    opens = settings.replace(track_opens=True, tracking="per-reader")
    (message,) = _send_one(store, opens)
    pixel = re.search(r'<img src="[^"]*/r/([A-Za-z0-9_-]{12})"', message.html)
    assert pixel, "no open pixel"  # no reader part on it: opens are never a reader's
    redirects, _ = _redirects(store, opens)
    followed = redirects.follow(pixel.group(1), "GET", BROWSER, "192.0.2.1")
    assert followed is not None and followed.location is None and PIXEL.startswith(b"GIF89a")
    redirects.recorder.close()
    settle(store, everything=True)
    assert store.db.execute("SELECT subscriber_id FROM clicks").fetchall() == [(None,)]
    from newsletter.engagement.stats import figures

    shown = figures(store, opens, SAMPLE_WEEK)
    assert (shown.opens, shown.human) == (1, 0)  # an open is not a click


def test_old_raw_rows_are_folded_into_counts_and_the_figures_stay(
    sent: Store, settings: Settings
) -> None:
    per_reader = settings.replace(tracking="per-reader")
    redirects, recorder = _redirects(sent, per_reader)
    dispatch_id = sent.dispatches.get(str(SAMPLE_WEEK))["id"]
    key = next(r["key"] for r in sent.clicks.links(dispatch_id) if r["kind"] == "read")
    reader = sent.subscribers.get_by_email("a@example.org")["id"]
    part = reader_part(SECRET, dispatch_id, reader)
    for _ in range(3):
        assert redirects.follow(key + part, "GET", BROWSER, "192.0.2.1") is not None
    recorder.close()
    settle(sent, everything=True)
    from newsletter.engagement.stats import figures

    before = figures(sent, per_reader, SAMPLE_WEEK)
    assert (
        sent.db.execute("SELECT count(*) FROM clicks WHERE subscriber_id = ?", [reader]).fetchone()[
            0
        ]
        == 3
    )
    far_future = datetime(2100, 1, 1, tzinfo=UTC).timestamp()
    assert fold_old(sent, settings, now=far_future) == 3
    assert sent.db.execute("SELECT count(*) FROM clicks").fetchone()[0] == 0
    assert sent.db.execute("SELECT human, automated FROM click_totals").fetchall() == [(3, 0)]
    after = figures(sent, per_reader, SAMPLE_WEEK)
    assert (after.human, after.automated) == (before.human, before.automated) == (3, 0)
    assert fold_old(sent, settings) == 0  # nothing recent is folded


def test_a_failed_write_keeps_the_hits_for_the_next_flush(store: Store) -> None:
    calls = []

    class Broken:
        def __getattr__(self, name: str) -> object:
            calls.append(name)
            raise sqlite3.OperationalError("database is locked")

    recorder = Recorder(lambda: Broken())  # type: ignore[arg-type, return-value]
    recorder._hits.append(("k" * 12, 1.0, "v", True, None, None))
    with pytest.raises(sqlite3.OperationalError):
        recorder.flush()
    assert list(recorder._hits) == [("k" * 12, 1.0, "v", True, None, None)]
    assert calls


def _worst_case(settings: Settings) -> object:
    """12 signals with every field of the seed pages, signal pages and links in summaries."""
    links = (
        '<p>See <a href="https://github.com/org/repo/tree/main/path">the code</a> and'
        ' <a href="https://lab.example.org/blog/2026/06/post">the post</a>.</p>'
    )
    signals = [
        make_signal(
            i,
            slug=f"post-training-is-massive-supervised-learning-part-{i}-85130d{i:02d}",
            summary_html=f"<p>{'An abstract sentence of the paper. ' * 15}</p>{links}",
            title=f"Post-training is (Massive) Supervised Learning, part {i}, and compute",
        )
        for i in range(1, 13)
    ]
    return make_dispatch(signals, settings)


@pytest.mark.parametrize(("tracking", "opens"), [("aggregate", False), ("per-reader", True)])
def test_tracking_keeps_the_html_under_the_size_limits(
    settings: Settings, tracking: str, opens: bool
) -> None:
    public = settings.replace(public_url="https://brief.example-news.com")
    dispatch = _worst_case(public)
    plain = Composer(render_dispatch(dispatch, public), public, SECRET, "t").compose(READER)  # type: ignore[arg-type]
    tracked_settings = public.replace(tracking=tracking, track_opens=opens)
    tracker = tracker_for(tracked_settings, SECRET, 1)
    rendered = render_dispatch(dispatch, tracked_settings, tracker=tracker)  # type: ignore[arg-type]
    tracked = Composer(rendered, tracked_settings, SECRET, "t").compose(READER)
    assert len(rendered.links) >= 12 * 4  # title, Read at and two summary links per signal
    size, before = len(tracked.html.encode()), len(plain.html.encode())
    assert size < WARN_BYTES < CLIP_BYTES
    assert size - before < 1024, (size, before)  # keys are shorter than most URLs they replace


def _spam_score(message: object, spamassassin: str) -> tuple[float, list[str]]:
    result = spam_score(Parsed.from_bytes(message.as_bytes()).raw, spamassassin)  # type: ignore[attr-defined]
    return result.score, sorted(r.name for r in result.rules if r.points)


def test_tracking_adds_no_spamassassin_points(sent: Store, settings: Settings) -> None:
    spamassassin = require_tool(shutil.which("spamassassin"), "spamassassin")
    public = settings.replace(public_url="https://brief.example-news.com")
    dispatch = _worst_case(public)
    scores = {}
    for tracking, opens in (("off", False), ("aggregate", False), ("per-reader", True)):
        chosen = public.replace(tracking=tracking, track_opens=opens)
        rendered = render_dispatch(dispatch, chosen, tracker=tracker_for(chosen, SECRET, 1))  # type: ignore[arg-type]
        message = Composer(rendered, chosen, SECRET, "t").compose(READER)
        scores[tracking] = _spam_score(message, spamassassin)
    assert scores["aggregate"] == scores["off"], scores
    assert scores["per-reader"] == scores["off"], scores


def test_the_preflight_checks_run_on_the_tracked_message(
    run, sent: Store, settings: Settings
) -> None:
    result = run("check", "--week", str(SAMPLE_WEEK), "--json", "--skip=spam", "--skip=render")
    findings = json.loads(result.stdout)["findings"]
    content = " ".join(f["message"] for f in findings if f["check"] == "content")
    # the tracked links and the destinations behind them are both looked at
    assert "localhost:8000" in content and "example.org" in content
    size = next(f["message"] for f in findings if f["check"] == "size")
    assert "HTML is" in size


def test_per_reader_links_are_filled_in_not_compiled_per_reader(
    store: Store, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mjml

    compiles = []
    real = mjml.mjml2html
    monkeypatch.setattr(mjml, "mjml2html", lambda *a, **k: compiles.append(1) or real(*a, **k))
    per_reader = settings.replace(tracking="per-reader")
    load_sample(store, now=datetime(2026, 6, 14, tzinfo=UTC))
    build_dispatch(store, per_reader, SAMPLE_WEEK)
    approve(store, per_reader, SAMPLE_WEEK)
    for n in range(5):
        add_subscriber(store, f"reader{n}@example.org", confirmed=True)
    sender = MemorySender()
    send_dispatch(store, per_reader, sender, SAMPLE_WEEK)
    assert len(compiles) == 1 and len(sender.sent) == 5
    dispatch_id = store.dispatches.get(str(SAMPLE_WEEK))["id"]
    for message in sender.sent:
        reader = store.subscribers.get_by_email(message.to_addr)["id"]
        part = reader_part(SECRET, dispatch_id, reader)
        tracked = re.findall(r'href="[^"]*/r/([A-Za-z0-9_.-]+)"', message.html)
        assert tracked and all(token.endswith(part) for token in tracked)
