"""The signal stream from the sample data: each seed page's lines on its signal page, which
signals are public, slugs and redirects, the stream's pages and filters, feeds, sitemap, the
static build, `signals publish / unpublish`, and the email's links to the pages."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import ClassVar

import feedparser
import jsonschema
import pytest

from newsletter.delivery.deliver import send_dispatch
from newsletter.delivery.senders import MemorySender
from newsletter.demo import load_sample
from newsletter.dispatch.build import approve, build_dispatch, load_dispatch
from newsletter.readers.subscriptions import add_subscriber
from newsletter.settings import Settings, load_settings
from newsletter.signals.annotations import import_annotations
from newsletter.site.build import build_site
from newsletter.site.pages import Filter, Moved, Page, Site
from newsletter.site.paths import STATIC
from newsletter.site.publish import set_published
from newsletter.store import Store
from newsletter.weeks import Week

SEEDS = Path(__file__).parent / "fixtures" / "seeds"
SCHEMA = Path(__file__).parent / "fixtures" / "jsonfeed-1.1.schema.json"
WEEK = Week(2026, 24)
SEED_000 = "2606.07527"  # sent in the W24 dispatch
SEED_002 = "2605.22731"  # published by the editor between dispatches
UNANNOTATED = "2606.09021"  # in the W24 dispatch, but the editor wrote no read

#: the seed pages' own texts (they spell the publication three ways)
SEED_TEXTS = {
    "NEWSLETTER_STREAM_DISCLAIMER": "This signal links to a primary source. Continuum Brief"
    " monitors and indexes it as part of the live intelligence stream — we do not republish"
    " source content.",
    "NEWSLETTER_STREAM_TRACKED_BY": "Tracked by The Continuum Brief · live intelligence network",
    "NEWSLETTER_CONSENT_TEXT": "By subscribing, you agree to receive updates from"
    " {PUBLICATION}. You can unsubscribe at any time.",
    "NEWSLETTER_NAME": "The Continuum Brief",
}


def publish_sample(store: Store, settings: Settings) -> Store:
    """The sample week sent to one reader, and seed 002 published by the editor."""
    load_sample(store, now=datetime(2026, 6, 14, tzinfo=UTC))
    add_subscriber(store, "reader@example.org", name="Ada", confirmed=True)
    build_dispatch(store, settings, WEEK)
    approve(store, settings, WEEK)
    send_dispatch(store, settings, MemorySender(), WEEK)
    set_published(store, settings, [_id(store, SEED_002)], public=True)
    return store


def _id(store: Store, arxiv_id: str) -> int:
    row = store.signals.find(arxiv_id=arxiv_id)
    assert row is not None, arxiv_id
    return int(row["id"])


@pytest.fixture
def public(store: Store, settings: Settings) -> Store:
    return publish_sample(store, settings)


def page_of(store: Store, settings: Settings, arxiv_id: str) -> Page:
    signal = store.signals.get(_id(store, arxiv_id))
    assert signal is not None and signal.slug
    page = Site(store, settings).signal_page(signal.slug)
    assert isinstance(page, Page), f"{arxiv_id} has no page"
    return page


class Text(HTMLParser):
    """The text a reader sees, a line per block; no head, no share buttons' markup."""

    BLOCKS: ClassVar = {"p", "h1", "h2", "h3", "li", "div", "section", "nav", "aside", "ul"}

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("head", "script", "style", "title"):
            self._skip += 1
        if tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("head", "script", "style", "title"):
            self._skip -= 1
        if tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)

    def lines(self) -> list[str]:
        text = "".join(self.parts)
        return [" ".join(line.split()) for line in text.splitlines() if line.strip()]


def visible_lines(html: str) -> list[str]:
    parser = Text()
    parser.feed(html)
    return parser.lines()


def _alnum(text: str) -> str:
    return re.sub(r"[\W_]+", "", text.casefold())


def _quotes(text: str) -> str:
    """arXiv's TeX quotes (``x'') and typographic ones read the same."""
    return re.sub(r"``|''|[“”]", '"', text)


def seed_lines(name: str) -> list[str]:
    """The seed page's lines a signal page must show, share buttons' markup left out."""
    lines = [line.strip() for line in (SEEDS / name).read_text(encoding="utf-8").splitlines()]
    lines = [line for line in lines if line]
    title = lines[1]
    kept = []
    for i, line in enumerate(lines):
        if line == "Share" or (line == title and i > 1 and lines[i - 1] == "Share"):
            continue  # the share row: its label and the title it shares
        kept.append(line.removeprefix("• ").removeprefix("· "))  # list markers
    return kept


@pytest.mark.parametrize(
    ("seed", "arxiv_id"),
    [("000_67633de4128c5679.txt", SEED_000), ("002_7fc5c1f9352eee83.txt", SEED_002)],
)
def test_each_seed_signal_page_shows_every_line_of_its_seed(
    env: dict[str, str], store: Store, seed: str, arxiv_id: str
) -> None:
    settings = load_settings({**env, **SEED_TEXTS, "NEWSLETTER_NAME": "The Brief"}, None)
    # the seed spells the name three ways: "The Brief", "Continuum Brief", "THE CONTINUUM BRIEF"
    settings = settings.replace(
        consent_text=SEED_TEXTS["NEWSLETTER_CONSENT_TEXT"].replace(
            "{PUBLICATION}", "THE CONTINUUM BRIEF"
        )
    )
    publish_sample(store, settings)
    page = page_of(store, settings, arxiv_id).body.decode()
    shown = visible_lines(page)
    text = "\n".join(shown)
    expected = seed_lines(seed)
    kicker, *rest = expected
    assert _alnum(kicker) == _alnum(shown[shown.index(rest[0]) - 1]), (kicker, shown[:8])
    at = 0
    for line in rest:
        if line.startswith("arXiv:") and "Abstract:" in line:
            # our collector strips arXiv's "arXiv:… Announce Type: … Abstract:" prefix, and the
            # seed cut the abstract mid-word: its words up to the cut must be there
            line = line.split("Abstract:", 1)[1].strip().rsplit(" ", 1)[0]
            found = _quotes(text).find(_quotes(line), at)
        else:
            found = text.find(line, at)
        assert found >= 0, f"seed line missing or out of order: {line!r}"
        at = found + 1
    # the share row: plain links, no script, no tracker
    for network in (
        "mailto:?",
        "https://x.com/intent/tweet?",
        "https://www.linkedin.com/sharing/share-offsite/?url=",
        "https://bsky.app/intent/compose?",
        "https://share.joinmastodon.org/#text=",
    ):
        assert network in page, network
    assert "Copy link" in page and "<script src" not in page


def test_default_texts_name_the_publication(public: Store, settings: Settings) -> None:
    shown = "\n".join(visible_lines(page_of(public, settings, SEED_000).body.decode()))
    assert (
        "This signal links to a primary source. The Brief monitors and indexes it as part of"
        " the live intelligence stream — we do not republish source content." in shown
    )
    assert "Tracked by The Brief · live intelligence network" in shown
    assert "The Brief · Weekly Dispatch" in shown
    assert (
        "By subscribing, you agree to receive updates from THE BRIEF. You can unsubscribe at"
        " any time." in shown
    )
    assert "Read at arXiv cs.LG" in shown


def test_fields_a_signal_lacks_are_left_out(public: Store, settings: Settings) -> None:
    battery = next(s for s in public.signals.list() if "battery" in s.title)
    assert battery.slug
    page = Site(public, settings).signal_page(battery.slug)
    assert isinstance(page, Page)
    shown = "\n".join(visible_lines(page.body.decode()))
    assert "Why now" in shown and "Editorial confidence: 75 / 100" in shown
    for absent in ("Winners", "Losers", "Second-order effects", "Why it’s important", "Third"):
        assert absent not in shown, absent
    assert "None" not in shown and "<ul></ul>" not in page.body.decode()


def test_only_annotated_signals_that_went_out_or_were_published_are_public(
    public: Store, settings: Settings
) -> None:
    site = Site(public, settings)
    public_titles = {s.title for s in public.stream.all()}
    for signal in public.signals.list():
        assert signal.slug
        page = site.signal_page(signal.slug)
        if signal.arxiv_id == UNANNOTATED or not signal.is_annotated:
            assert page is None, f"unannotated {signal.title} is reachable"
            assert signal.title not in public_titles
        else:
            assert isinstance(page, Page), signal.title
    # an annotated signal only in a draft is not public either
    draft = public.signals.create(
        {
            "title": "Draft only",
            "url": "https://example.org/draft",
            "signal_score": 90,
            "published": datetime(2026, 6, 16, tzinfo=UTC),
        }
    )
    build_dispatch(public, settings, Week(2026, 25))
    assert not public.stream.is_public(draft)
    # garbage and look-alike slugs answer nothing
    for slug in ("", "..", "../newsletter.db", "x" * 300, "post-training-ZZZZZZZZ"):
        assert site.signal_page(slug) is None, slug


def test_unpublish_takes_a_sent_signal_down_everywhere(public: Store, settings: Settings) -> None:
    seed = public.signals.get(_id(public, SEED_000))
    assert seed is not None and seed.slug
    set_published(public, settings, [seed.id], public=False)
    site = Site(public, settings)
    assert site.signal_page(seed.slug) is None
    stream = site.stream_page(1)
    assert stream is not None and seed.title.encode() not in stream.body
    assert seed.slug.encode() not in site.atom().body
    assert seed.slug.encode() not in site.json_feed().body
    assert seed.slug.encode() not in site.sitemap([]).body
    set_published(public, settings, [seed.id], public=True)
    assert isinstance(site.signal_page(seed.slug), Page)


def test_a_retitled_signal_keeps_its_short_id_and_its_old_slug_redirects(
    public: Store, settings: Settings, tmp_path: Path
) -> None:
    seed = public.signals.get(_id(public, SEED_000))
    assert seed is not None and seed.slug
    old = seed.slug
    notes = tmp_path / "retitle.jsonl"
    notes.write_text(
        json.dumps({"url": seed.url, "title": "Post-training is supervised learning, at scale"})
        + "\n",
        encoding="utf-8",
    )
    import_annotations(public, [notes])
    fresh = public.signals.get(seed.id)
    assert fresh is not None and fresh.slug
    assert fresh.slug.startswith("post-training-is-supervised-learning-at-scale-")
    assert fresh.slug.rsplit("-", 1)[1] == old.rsplit("-", 1)[1]  # the short id stays
    site = Site(public, settings)
    assert site.signal_page(old) == Moved(f"signals/{fresh.slug}/")
    assert isinstance(site.signal_page(fresh.slug), Page)
    # the static build cannot answer 301: the old address sends readers on without script
    folder = build_site(public, settings, tmp_path / "site").folder
    moved = (folder / "signals" / old / "index.html").read_text(encoding="utf-8")
    assert f'content="0; url=../{fresh.slug}/"' in moved and "<script" not in moved


def test_slugs_are_readable_and_stable(public: Store) -> None:
    seed = public.signals.get(_id(public, SEED_000))
    assert seed is not None
    words = "post-training-is-massive-supervised-learning"
    assert re.fullmatch(rf"{words}-[0-9a-f]{{8}}", seed.slug or "")
    # the same signal gets the same slug in another database
    other = Store.memory()
    load_sample(other, now=datetime(2026, 6, 14, tzinfo=UTC))
    again = other.signals.find(arxiv_id=SEED_000)
    assert again is not None and again["slug"] == seed.slug


def test_stream_pages_newest_first_with_filters(public: Store, settings: Settings) -> None:
    small = settings.replace(stream_page_size=2)
    site = Site(public, small)
    first = site.stream_page(1)
    assert first is not None
    everything = [s.title for s in public.stream.all()]
    assert len(everything) == 5
    dates = [s.published for s in public.stream.all()]
    assert dates == sorted(dates, reverse=True)
    pages = [site.stream_page(n) for n in (1, 2, 3)]
    assert all(isinstance(p, Page) for p in pages) and site.stream_page(4) is None
    seen = [t for p in pages for t in everything if t.encode() in p.body]  # type: ignore[union-attr]
    assert sorted(seen) == sorted(everything)
    shown = "\n".join(visible_lines(first.body.decode()))
    assert "Page 1 of 3" in shown and "Older →" in shown
    # a kicker, the title and one line for each entry
    assert "Signal · Markets · Jun 12, 2026, 12:00 PM · Signal 82 · Short term" in shown
    ai = site.stream_page(1, Filter(category="AI"))
    assert ai is not None
    assert b"Post-training is (Massive)" in ai.body and b"Chipmaker" not in ai.body
    assert site.find_category("ai") == "AI" and site.find_category("zoology") is None
    may = site.stream_page(1, Filter(week=Week(2026, 21)))
    assert may is not None and b"About States, Not Tokens" in may.body
    assert b"Chipmaker" not in may.body
    assert site.stream_page(1, Filter(week=Week(2026, 30))) is not None  # an empty week: empty


def test_signal_page_metadata_unfurls(public: Store, settings: Settings) -> None:
    page = page_of(public, settings, SEED_000).body.decode()
    seed = public.signals.get(_id(public, SEED_000))
    assert seed is not None
    canonical = f"{settings.public_url}/signals/{seed.slug}/"
    assert f'<link rel="canonical" href="{canonical}">' in page
    assert f'<meta property="og:url" content="{canonical}">' in page
    title = "Post-training is (Massive) Supervised Learning"
    assert f'<meta property="og:title" content="{title}">' in page
    assert '<meta property="og:site_name" content="The Brief">' in page
    assert '<meta name="twitter:card" content="summary">' in page
    assert f'<meta property="og:description" content="{seed.why_important}">' in page
    [block] = re.findall(r'<script type="application/ld\+json">(.*?)</script>', page, re.S)
    data = json.loads(block)
    assert data["@type"] == "Article" and data["url"] == canonical
    assert data["isBasedOn"]["url"] == "https://arxiv.org/abs/2606.07527"
    assert data["isBasedOn"]["publisher"]["name"] == "arXiv cs.LG"
    assert data["publisher"]["name"] == "The Brief"
    assert data["datePublished"].startswith("2026-06-09T04:00:00")


def test_kicker_date_is_in_the_publication_timezone(env: dict[str, str], store: Store) -> None:
    settings = load_settings({**env, "NEWSLETTER_TIMEZONE": "America/New_York"}, None)
    publish_sample(store, settings)
    shown = "\n".join(visible_lines(page_of(store, settings, SEED_000).body.decode()))
    assert "Jun 9, 2026, 12:00 AM" in shown


def test_feeds_parse_and_validate(public: Store, settings: Settings) -> None:
    site = Site(public, settings)
    atom = feedparser.parse(site.atom().body)
    assert not atom.bozo, atom.get("bozo_exception")
    assert atom.version == "atom10"
    assert len(atom.entries) == 5
    first = atom.entries[0]
    assert first.link.startswith(f"{settings.public_url}/signals/") and first.id == first.link
    assert "Why this matters" in first.content[0].value
    feed = json.loads(site.json_feed().body)
    jsonschema.validate(feed, json.loads(SCHEMA.read_text(encoding="utf-8")))
    assert feed["version"] == "https://jsonfeed.org/version/1.1"
    assert [i["title"] for i in feed["items"]] == [e.title for e in atom.entries]
    assert all(i["url"].endswith("/") and i["external_url"].startswith("https://")
               for i in feed["items"])  # fmt: skip


def test_sitemap_lists_the_stream_the_signals_and_the_issues(
    public: Store, settings: Settings
) -> None:
    xml = Site(public, settings).sitemap(["2026-W24"]).body
    ns = {"s": "http://www.sitemaps.org/schemas/sitemap/0.9"}
    locs = [e.text for e in ET.fromstring(xml).findall("s:url/s:loc", ns)]  # noqa: S314 - ours
    base = settings.public_url
    assert f"{base}/signals/" in locs and f"{base}/archive/2026-W24/" in locs
    pages = [u for u in locs if u and u.startswith(f"{base}/signals/") and u != f"{base}/signals/"]
    assert len(pages) == 5


def test_static_build_writes_the_stream_under_signals(
    public: Store, settings: Settings, tmp_path: Path
) -> None:
    report = build_site(public, settings, tmp_path / "site")
    folder = report.folder
    assert (report.issues, report.signals) == (1, 5)
    for path in ("index.html", "feed.xml", "site.css", "sitemap.xml", "2026-W24/index.html",
                 "signals/index.html", "signals/feed.xml", "signals/feed.json",
                 "signals/category/ai/index.html", "signals/week/2026-W24/index.html"):  # fmt: skip
        assert (folder / path).is_file(), path
    for signal in public.stream.all():
        page = (folder / "signals" / str(signal.slug) / "index.html").read_text(encoding="utf-8")
        assert signal.title.replace("&", "&amp;") in page
        assert 'href="../../site.css"' in page
        # signals sent in the dispatch link to its archive page (seed 002 was only published)
        assert ('href="../../2026-W24/"' in page) == (signal.arxiv_id != SEED_002)
    # static pages link the reader to the sign-up form (no CORS origin is allowed here)
    stream = (folder / "signals" / "index.html").read_text(encoding="utf-8")
    assert f'<form method="get" action="{settings.public_url}/"' in stream
    # unannotated signals have no file
    hidden = public.signals.get(_id(public, UNANNOTATED))
    assert hidden is not None and not (folder / "signals" / str(hidden.slug)).exists()


def test_static_pages_post_to_the_service_when_another_site_may(
    public: Store, settings: Settings
) -> None:
    embedded = settings.replace(cors_origins=("https://brief.example",))
    stream = Site(public, embedded, STATIC).stream_page(1)
    assert stream is not None
    body = stream.body.decode()
    assert f'<form method="post" action="{settings.public_url}/subscribe"' in body
    assert 'name="website"' in body and 'name="csrf_token"' not in body


def test_the_email_links_each_public_signal_to_its_page(public: Store, settings: Settings) -> None:
    dispatch = load_dispatch(public, settings, WEEK)
    assert dispatch is not None and dispatch.html is not None
    seed = public.signals.get(_id(public, SEED_000))
    hidden = public.signals.get(_id(public, UNANNOTATED))
    assert seed is not None and hidden is not None
    page = f"{settings.public_url}/signals/{seed.slug}/"
    # the email's links are counted ones (engagement): where each leads is stored
    led_to = {row["url"]: row["key"] for row in public.clicks.links(dispatch.id)}
    assert f'<a href="{settings.public_url}/r/{led_to[page]}"' in dispatch.html  # the title
    assert "https://arxiv.org/abs/2606.07527" in led_to  # "Read at arXiv cs.LG"
    assert not any(f"/signals/{hidden.slug}/" in url for url in led_to)  # no page: the source
    tracked_page = f"  {settings.public_url}/r/{led_to[page]}"
    assert dispatch.text is not None and tracked_page in dispatch.text.splitlines()
    assert isinstance(Site(public, settings).signal_page(str(seed.slug)), Page)


def test_cli_publish_and_unpublish(run, tmp_path: Path, env: dict[str, str]) -> None:
    settings = load_settings(env, None)
    store = Store.open(settings.db)
    load_sample(store, now=datetime(2026, 6, 14, tzinfo=UTC))
    seed, bare = _id(store, SEED_002), _id(store, UNANNOTATED)
    store.close()
    refused = run("signals", "publish", str(seed), str(bare))
    assert refused.exit_code == 1 and f"#{bare}: not annotated" in refused.output
    missing = run("signals", "publish", "9999")
    assert missing.exit_code == 1 and "no signal with id 9999" in missing.output
    store = Store.open(settings.db)
    assert not store.stream.is_public(seed)  # all or nothing
    store.close()
    done = run("signals", "publish", str(seed))
    assert done.exit_code == 0 and f"{settings.public_url}/signals/" in done.output
    shown = run("signals", "show", str(seed))
    assert "page: http://localhost:8000/signals/post-training-is-about-states" in shown.output
    off = run("signals", "unpublish", str(seed))
    assert off.exit_code == 0 and "no public page" in off.output
    assert run("signals", "publish", "--help").exit_code == 0
    # with a static site in place, publishing rebuilds it
    assert run("archive", "build").exit_code == 0
    again = run("signals", "publish", str(seed))
    assert "static site rebuilt" in again.output
    assert any((tmp_path / "archive" / "signals").glob("post-training-is-about-states-*"))
