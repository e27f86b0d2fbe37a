"""Shared fixtures: a real SQLite file per test, settings pointing into tmp_path, a CLI runner."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from newsletter.cli import cli
from newsletter.settings import Settings, load_settings
from newsletter.store import Store

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """Environment for a run that touches only tmp_path."""
    return {
        "NEWSLETTER_DB": str(tmp_path / "newsletter.db"),
        "NEWSLETTER_OUTBOX": str(tmp_path / "outbox"),
        "NEWSLETTER_WEB_ARCHIVE_DIR": str(tmp_path / "archive"),
        "NEWSLETTER_SECRET_KEY": "test-secret-key-0123456789",
    }


@pytest.fixture
def settings(env: dict[str, str]) -> Settings:
    return load_settings(env, env_file=None)


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    opened = Store.open(settings.db)
    yield opened
    opened.close()


@pytest.fixture
def web_env(env: dict[str, str]) -> dict[str, str]:
    """`env` with what the web service's tests need (see `test_web_live.WEB_ENV`)."""
    from test_web_live import WEB_ENV

    return {**env, **WEB_ENV}


@pytest.fixture
def live(web_env: dict[str, str]) -> Iterator[Any]:
    """The real web service on 127.0.0.1 (`test_web_live.serving`); a test file with its own
    data to serve defines its own `live`."""
    from test_web_live import serving

    with serving(load_settings(web_env, env_file=None)) as server:
        yield server


@pytest.fixture
def run(env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Run the real CLI in tmp_path with the test environment; returns click's Result."""
    monkeypatch.chdir(tmp_path)
    for key in list(os.environ):
        if key.startswith("NEWSLETTER_"):
            monkeypatch.delenv(key)

    def invoke(
        *args: str, input: str | None = None, extra_env: dict[str, str] | None = None
    ) -> Result:
        return CliRunner().invoke(
            cli, list(args), env={**env, **(extra_env or {})}, input=input, catch_exceptions=False
        )

    return invoke


def require_tool(found: str | None, what: str) -> str:
    """A system tool the test drives: missing in CI is a failure (`.ci/run` installs it),
    missing on a developer's machine is a skip that says what to install."""
    if not found:
        message = f"{what} is not installed (.ci/run installs it with apt-get)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium driven by playwright (never a browser playwright downloads)."""
    from newsletter.checks.render import CHROMIUM_ARGS, find_chromium

    executable = require_tool(find_chromium(), "chromium")
    require_tool("playwright" if importlib.util.find_spec("playwright") else None, "playwright")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield launched
        launched.close()
