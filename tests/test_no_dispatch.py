"""A week without a dispatch: every command says which weeks have one and how to pick it."""

from __future__ import annotations

import pytest
from test_send_support import WEEK, add_subscribers, ready_week

from newsletter.settings import Settings
from newsletter.store import Store

QUIET_WEEK = "2026-W30"  # no signals were published in it

COMMANDS = [
    ("dispatch", "show"),
    ("dispatch", "approve"),
    ("preview",),
    ("check", "--skip", "spam", "--skip", "render"),
    ("send",),
    ("deliveries",),
]


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_names_the_weeks_that_have_one(
    run, store: Store, settings: Settings, args: tuple[str, ...]
) -> None:
    ready_week(store, settings)
    add_subscribers(store, 1)
    result = run(*args, "--week", QUIET_WEEK)
    assert result.exit_code == 1
    message = result.output.strip().splitlines()[-1]
    assert f"no dispatch for {QUIET_WEEK}" in message
    assert f"dispatches exist for {WEEK} (approved)" in message
    assert f"pick one with --week {WEEK}" in message
    assert "dispatch build" not in message  # building an empty week helps nobody


def test_offers_to_build_a_week_that_has_signals(run, store: Store, settings: Settings) -> None:
    ready_week(store, settings)
    store.db.execute("DELETE FROM dispatch_signals")
    store.db.execute("DELETE FROM dispatches")
    result = run("dispatch", "show", "--week", str(WEEK))
    assert result.exit_code == 1
    assert f"build it with `newsletter dispatch build --week {WEEK}`" in result.output


def test_with_no_dispatch_at_all(run) -> None:
    result = run("preview", "--week", QUIET_WEEK)
    assert result.exit_code == 1
    assert "none for any other week" in result.output
    assert f"{QUIET_WEEK} has no signals to build one from (`newsletter collect`" in result.output
