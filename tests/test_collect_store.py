"""What lands in SQLite: one signal per item however often or under whatever URL it is seen,
the editor's fields untouched by re-fetches, UTC dates, first-seen for a missing date."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from newsletter.signals.annotations import import_annotations
from newsletter.signals.collect import collect
from newsletter.store import Store

NOW = datetime(2026, 6, 14, 9, 30, tzinfo=UTC)


def _rss(items: str) -> bytes:
    return f'<rss version="2.0"><channel><title>Wire</title>{items}</channel></rss>'.encode()


def _feed(tmp_path: Path, name: str, body: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(body)
    return str(path)


def test_same_item_under_other_urls_or_again_is_one_signal(store: Store, tmp_path: Path) -> None:
    first = _rss(
        "<item><title>Capex up</title><link>https://Markets.example.org/capex/?utm_source=rss</link>"
        "<guid isPermaLink='false'>wire-1</guid><pubDate>Fri, 12 Jun 2026 09:00:00 +0200</pubDate>"
        "<description>First take.</description></item>"
    )
    again = _rss(
        "<item><title>Capex up 40%</title><link>https://markets.example.org/capex</link>"
        "<guid isPermaLink='false'>wire-1</guid><description>Revised take.</description></item>"
    )
    store.sources.add("wire", _feed(tmp_path, "a.rss", first), category="Markets")
    collect(store, now=NOW)
    (signal,) = store.signals.list()
    assert signal.url == "https://markets.example.org/capex"
    assert signal.published.isoformat() == "2026-06-12T07:00:00+00:00"
    assert signal.category == "Markets"

    (tmp_path / "a.rss").write_bytes(again)
    report = collect(store, now=NOW)
    assert (report.new, report.updated) == (0, 1)
    (signal,) = store.signals.list()
    assert signal.title == "Capex up 40%" and signal.summary_text == "Revised take."
    assert signal.published.isoformat() == "2026-06-12T07:00:00+00:00"


def test_arxiv_versions_and_replace_update_one_signal(store: Store, tmp_path: Path) -> None:
    def item(version: int, kind: str, link: str) -> str:
        return (
            f"<item><title>Paper v{version}</title><link>{link}</link>"
            f"<description>arXiv:2606.07527v{version} Announce Type: {kind} \n"
            f"Abstract: Abstract v{version}.</description>"
            f"<guid isPermaLink='false'>oai:arXiv.org:2606.07527v{version}</guid></item>"
        )

    store.sources.add(
        "lg", _feed(tmp_path, "lg.rss", _rss(item(1, "new", "https://arxiv.org/abs/2606.07527")))
    )
    collect(store, now=NOW)
    (tmp_path / "lg.rss").write_bytes(_rss(item(2, "replace", "http://arxiv.org/pdf/2606.07527v2")))
    report = collect(store, now=NOW)
    assert report.new == 0 and report.updated == 1
    (signal,) = store.signals.list()
    assert (signal.arxiv_id, signal.announce_type) == ("2606.07527", "replace")
    assert signal.summary_text == "Abstract v2." and signal.title == "Paper v2"


def test_refetch_never_overwrites_the_editors_fields(store: Store, tmp_path: Path) -> None:
    body = _rss(
        "<item><title>Grid reform</title><link>https://filings.example.org/reform</link>"
        "<description>Filed.</description></item>"
    )
    store.sources.add("filings", _feed(tmp_path, "f.rss", body), category="Energy")
    collect(store, now=NOW)
    notes = tmp_path / "reform.md"
    notes.write_text(
        "---\nurl: https://filings.example.org/reform\ncategory: Policy\nsignal_score: 70\n"
        "horizon: long\nwinners: [Storage]\n---\nWatch the queue.\n",
        encoding="utf-8",
    )
    import_annotations(store, [notes])
    (tmp_path / "f.rss").write_bytes(body.replace(b"Filed.", b"Filed, amended."))
    assert collect(store, now=NOW).updated == 1
    (signal,) = store.signals.list()
    assert signal.summary_text == "Filed, amended."
    assert (signal.category, signal.signal_score, signal.horizon) == ("Policy", 70, "long term")
    assert signal.winners == ("Storage",) and signal.notes == "Watch the queue."


def test_missing_date_falls_back_to_first_seen_and_stays(store: Store, tmp_path: Path) -> None:
    body = _rss("<item><title>Undated</title><link>https://example.org/u</link></item>")
    store.sources.add("u", _feed(tmp_path, "u.rss", body))
    collect(store, now=NOW)
    later = datetime(2026, 6, 21, tzinfo=UTC)
    (tmp_path / "u.rss").write_bytes(body.replace(b"Undated", b"Undated (edited)"))
    collect(store, now=later)
    (signal,) = store.signals.list()
    assert signal.published == NOW and signal.published.tzinfo is not None


def test_short_guids_of_two_feeds_do_not_collide(store: Store, tmp_path: Path) -> None:
    for name in ("a", "b"):
        body = _rss(
            f"<item><title>{name} one</title><link>https://{name}.example.org/1</link>"
            "<guid isPermaLink='false'>1</guid></item>"
        )
        store.sources.add(name, _feed(tmp_path, f"{name}.rss", body))
    assert collect(store, now=NOW).new == 2


def test_a_source_that_breaks_keeps_its_earlier_signals(store: Store, tmp_path: Path) -> None:
    body = _rss("<item><title>Kept</title><link>https://example.org/k</link></item>")
    store.sources.add("k", _feed(tmp_path, "k.rss", body))
    collect(store, now=NOW)
    (tmp_path / "k.rss").write_bytes(b"<html><body>maintenance</body></html>")
    (result,) = collect(store, now=NOW).sources
    assert result.error and "HTML page" in result.error
    assert [s.title for s in store.signals.list()] == ["Kept"]
    (tmp_path / "k.rss").unlink()
    (result,) = collect(store, now=NOW).sources
    assert result.error and "cannot read" in result.error
    assert store.sources.get("k")["consecutive_errors"] == 2


def test_a_title_or_summary_the_editor_rewrote_survives_refetch(
    store: Store, tmp_path: Path
) -> None:
    body = _rss(
        "<item><title>CAPEX UP!!!</title><link>https://example.org/c</link>"
        "<description>Feed text.</description></item>"
    )
    store.sources.add("c", _feed(tmp_path, "c.rss", body))
    collect(store, now=NOW)
    fix = tmp_path / "fix.jsonl"
    fix.write_text('{"url": "https://example.org/c", "title": "Capex up"}\n', encoding="utf-8")
    import_annotations(store, [fix])
    (tmp_path / "c.rss").write_bytes(body.replace(b"Feed text.", b"Feed text, revised."))
    assert collect(store, now=NOW).updated == 1
    (signal,) = store.signals.list()
    assert signal.title == "Capex up"
    assert signal.summary_text == "Feed text, revised."
