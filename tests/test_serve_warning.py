"""`serve` warns when the links in mail would not reach the address it serves (local setups)."""

from __future__ import annotations

import pytest

import subscribers.server
from newsletter.cli.serve import address_warning


@pytest.mark.parametrize(
    ("public_url", "host", "port", "expected"),
    [
        ("http://localhost:8000", "127.0.0.1", 8000, None),
        ("http://localhost:8000", "0.0.0.0", 8000, None),
        ("http://127.0.0.1:8080", "127.0.0.1", 8080, None),
        ("https://brief.example.org", "127.0.0.1", 8025, None),  # behind a proxy: by design
        (
            "http://localhost:8000",
            "127.0.0.1",
            8025,
            "set NEWSLETTER_PUBLIC_URL=http://localhost:8025",
        ),
        ("http://localhost", "127.0.0.1", 8000, "they point at port 80"),
        ("http://localhost:8000", "127.0.0.1", 0, "--port 0 picks a free port"),
        (
            "http://localhost:8000",
            "192.168.1.20",
            8000,
            "NEWSLETTER_PUBLIC_URL=http://192.168.1.20:8000",
        ),
    ],
)
def test_address_warning(public_url: str, host: str, port: int, expected: str | None) -> None:
    warning = address_warning(public_url, host, port)
    if expected is None:
        assert warning is None
    else:
        assert warning is not None and expected in warning and public_url in warning


def test_serve_prints_the_warning_before_serving(run, monkeypatch: pytest.MonkeyPatch) -> None:
    served: list[tuple[str, int]] = []
    monkeypatch.setattr(
        subscribers.server, "serve", lambda settings, host, port, **kw: served.append((host, port))
    )
    result = run("serve", "--port", "8025")
    assert served == [("127.0.0.1", 8025)]
    assert "warning: links in mail (confirm, unsubscribe) use" in result.output
    assert "http://localhost:8000 but this serves http://127.0.0.1:8025" in result.output
    quiet = run("serve", extra_env={"NEWSLETTER_PUBLIC_URL": "http://localhost:8000"})
    assert "warning" not in quiet.output
