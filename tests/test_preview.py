"""The editor's preview: a file, the text part, a test message, and the live server."""

from __future__ import annotations

import email
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from email import policy
from pathlib import Path

import httpx
import pytest

from newsletter.demo import load_sample
from newsletter.dispatch.build import build_dispatch
from newsletter.engagement.chart import previous_page
from newsletter.errors import NewsletterError
from newsletter.preview import PreviewServer, live_renderer, make_preview_server
from newsletter.settings import Settings
from newsletter.store import Store
from newsletter.weeks import Week

SAMPLE = Path(__file__).parent.parent / "newsletter" / "sample"
WEEK = Week(2026, 24)


@pytest.fixture
def drafted(store: Store, settings: Settings) -> Store:
    load_sample(store, now=datetime(2026, 6, 14, tzinfo=UTC))
    build_dispatch(store, settings, WEEK)
    return store


def test_cli_writes_the_html(run, drafted: Store, tmp_path: Path) -> None:
    result = run("preview", "--week", "2026-W24", "--output", "out/preview.html")
    assert result.exit_code == 0, result.output
    html = (tmp_path / "out" / "preview.html").read_text(encoding="utf-8")
    assert "Hello Sample Reader," in html and "Chipmaker guides capex" in html
    assert str(tmp_path / "out" / "preview.html") in result.output


def test_cli_shows_the_text_part(run, drafted: Store, tmp_path: Path) -> None:
    result = run("preview", "--week", "2026-W24", "--text")
    assert result.exit_code == 0
    assert "THE BRIEF · WEEKLY DISPATCH" in result.output
    assert "Read at arXiv cs.LG:" in result.output and "<" not in result.output
    assert not (tmp_path / "preview.html").exists()


def test_cli_sends_one_test_message(run, drafted: Store, tmp_path: Path) -> None:
    dry = run("preview", "--week", "2026-W24", "--to", "editor@example.org", "--dry-run")
    assert dry.exit_code == 0 and "would send test message to editor@example.org" in dry.output
    assert not (tmp_path / "outbox").exists()
    result = run("preview", "--week", "2026-W24", "--to", "editor@example.org")
    assert result.exit_code == 0, result.output
    files = list((tmp_path / "outbox").rglob("*.eml"))
    assert len(files) == 1
    parsed = email.message_from_bytes(files[0].read_bytes(), policy=policy.default)
    assert parsed["Subject"].startswith("[TEST] Chipmaker guides capex")
    assert parsed["To"] == "editor@example.org"
    # a test message is not a delivery: the dispatch is still a draft with nobody mailed
    assert drafted.dispatches.get("2026-W24")["status"] == "draft"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--to", "not-an-address"), "--to: 'not-an-address' is not a valid email address"),
        (("--to", "a@example.org\r\nBcc: b@example.org"), "is not a valid email address"),
    ],
)
def test_cli_refuses_a_bad_address(
    run, drafted: Store, args: tuple[str, ...], message: str
) -> None:
    result = run("preview", "--week", "2026-W24", *args)
    assert result.exit_code == 1
    assert message in result.output and len(result.output.strip().splitlines()) == 1


def test_cli_without_a_dispatch(run) -> None:
    result = run("preview", "--week", "2026-W30")
    assert result.exit_code == 1
    assert "no dispatch for 2026-W30 and none for any other week" in result.output


@pytest.fixture
def serve() -> Iterator:
    servers: list[PreviewServer] = []

    def start(render, panel=None, stats=None) -> tuple[PreviewServer, httpx.Client]:
        server = make_preview_server(render, title="Test", port=0, panel=panel, stats=stats)
        servers.append(server)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}).start()
        return server, httpx.Client(base_url=server.url, timeout=5)

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_live_server_reloads_when_anything_changes(serve) -> None:
    state = {"html": "<p>first</p>", "fail": False}

    def render() -> tuple[str, str]:
        if state["fail"]:
            raise NewsletterError("email template does not compile as MJML: oops")
        return state["html"], "text " + state["html"]

    server, client = serve(render)
    assert server.url.startswith("http://127.0.0.1:")
    page = client.get("/").text
    assert 'id="phone"' in page and "width: 375px" in page and 'id="desktop"' in page
    first = client.get("/version").json()["version"]
    assert client.get("/version").json()["version"] == first  # nothing changed
    assert client.get("/email.html").text == "<p>first</p>"
    state["html"] = "<p>second</p>"
    second = client.get("/version").json()["version"]
    assert second != first
    assert client.get("/email.html").text == "<p>second</p>"
    assert client.get("/email.txt").text == "text <p>second</p>"
    # a broken template is shown in the preview, and the server keeps running
    state["fail"] = True
    assert client.get("/version").json()["version"] != second
    assert "does not compile as MJML: oops" in client.get("/email.html").text
    assert client.get("/nope").status_code == 404
    assert client.get("/checks").status_code == 404  # no panel asked for


def test_live_server_shows_a_panel_beside_the_views(serve) -> None:
    _, client = serve(lambda: ("<p>x</p>", "x"), panel=lambda: "<p>3 checks passed</p>")
    assert 'id="checks" src="/checks"' in client.get("/").text
    assert client.get("/checks").text == "<p>3 checks passed</p>"


def test_live_server_shows_last_weeks_figures_beside_the_draft(
    serve, run, store: Store, settings: Settings
) -> None:
    assert "nothing to show yet" in previous_page(store, settings, Week(2026, 25))
    assert run("demo").exit_code == 0  # 2026-W24 goes out; the editor drafts the next week

    def figures_page() -> str:  # the server's own thread: its own connection
        opened = Store.open(settings.db)
        try:
            return previous_page(opened, settings, Week(2026, 25))
        finally:
            opened.close()

    _, client = serve(lambda: ("<p>x</p>", "x"), stats=figures_page)
    assert 'id="stats" src="/stats"' in client.get("/").text
    figures = client.get("/stats").text
    assert "Issue 1 · 2026-W24" in figures and "Human clicks" in figures and "<svg" in figures
    assert "<script" not in figures


def test_live_server_refuses_other_host_names(serve) -> None:
    _, client = serve(lambda: ("<p>x</p>", "x"))
    assert client.get("/email.html", headers={"Host": "evil.example"}).status_code == 403


def test_live_renderer_sees_setting_and_signal_changes(drafted: Store, settings: Settings) -> None:
    current = {"settings": settings}
    render = live_renderer(drafted, lambda: current["settings"], WEEK)
    html, _ = render()
    assert "The Brief" in html
    current["settings"] = settings.replace(name="The Continuum Brief")
    assert "The Continuum Brief" in render()[0]
    chip = next(s for s in drafted.signals.list() if "Chipmaker" in s.title)
    drafted.db.execute("UPDATE signals SET title = 'Edited title' WHERE id = ?", [chip.id])
    assert "Edited title" in render()[0]


def test_cli_opens_the_file_in_the_browser(
    run, drafted: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[str] = []
    monkeypatch.setattr("webbrowser.open", lambda url, *a, **k: opened.append(url) or True)
    result = run("preview", "--week", "2026-W24", "--open")
    assert result.exit_code == 0
    assert opened == [(tmp_path / "preview.html").resolve().as_uri()]
