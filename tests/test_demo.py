"""The README's first command: the whole slice on sample data, read as a mail client would."""

from __future__ import annotations

import email
import re
from email import policy
from pathlib import Path

from newsletter.engagement.tracking import destinations
from newsletter.store import Store


def test_demo_writes_one_valid_message_per_sample_subscriber(run, tmp_path: Path) -> None:
    result = run("demo")
    store = Store.open(tmp_path / "newsletter.db")
    destination = destinations(store)
    assert result.exit_code == 0, result.output
    assert "preview:" in result.output and "outbox:" in result.output
    outbox = tmp_path / "outbox" / "2026-W24"
    messages = sorted(outbox.glob("*.eml"))
    assert [m.name.split(".eml")[0].rsplit(".", 2)[0] for m in messages] == [
        "ada@example.org",
        "alan@example.org",
        "grace@example.org",
    ]
    for path in messages:
        msg = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        assert msg.get_content_type() == "multipart/alternative"
        parts = [p.get_content_type() for p in msg.iter_parts()]
        assert parts == ["text/plain", "text/html"]
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert "/unsubscribe/" in msg["List-Unsubscribe"]
        assert msg["Message-ID"] and msg["Date"] and msg["List-Id"]
        html = msg.get_body(("html",)).get_content()
        text = msg.get_body(("plain",)).get_content()
        assert "Post-training is (Massive) Supervised Learning" in html
        assert "Editorial confidence: 90 / 100" in text
        assert "Unsubscribe" in html
        view = re.search(r'href="([^"]+)"[^>]*>View in browser', html)
        assert view and view.group(1).startswith("http://localhost:8000/r/")  # a counted link
        assert destination(view.group(1)) == "http://localhost:8000/archive/2026-W24/"
    # "View in browser" points at the archive page the demo just published
    page = tmp_path / "archive" / "2026-W24" / "index.html"
    assert "Post-training is (Massive) Supervised Learning" in page.read_text()
    assert "ada@example.org" not in page.read_text()
    assert (tmp_path / "newsletter.db").is_file()
    store.close()


def test_demo_twice_sends_nobody_a_second_copy(run, tmp_path: Path) -> None:
    assert run("demo").exit_code == 0
    second = run("demo")
    assert second.exit_code == 0
    assert "already sent" in second.output
    assert len(list((tmp_path / "outbox" / "2026-W24").glob("*.eml"))) == 3
