"""Bad input at the command line: one line naming it, a non-zero exit, the database as it was."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from newsletter.store import Store

SAMPLE = Path(__file__).parent.parent / "newsletter" / "sample"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_every_command_has_help(run) -> None:
    for args in (
        [],
        ["init"],
        ["collect"],
        ["sources", "add"],
        ["signals", "import"],
        ["dispatch", "build"],
        ["preview"],
        ["send"],
        ["deliveries"],
        ["deliveries", "reconcile"],
        ["subscribers", "add"],
        ["subscribers", "prefs"],
        ["subscribers", "rotate-tokens"],
        ["stats"],
        ["check"],
        ["demo"],
    ):
        result = run(*args, "--help")
        assert result.exit_code == 0, args
        assert "Usage:" in result.output


def test_reconcile_without_a_dispatch_names_the_weeks_there_are(run) -> None:
    result = run("deliveries", "reconcile", "--week", "2030-W01")
    assert result.exit_code == 1
    assert "no dispatch for 2030-W01" in result.output and "Traceback" not in result.output


def test_unknown_option_is_a_usage_error(run) -> None:
    result = run("collect", "--frobnicate")
    assert result.exit_code == 2
    assert "--frobnicate" in result.output and "No such option" in result.output


def test_database_that_is_not_sqlite(run, tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.db"
    bogus.write_text("hello, I am a text file\n" * 50)
    before = _digest(bogus)
    result = run("--db", str(bogus), "subscribers", "list")
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and str(bogus) in lines[0] and "not a newsletter database" in lines[0]
    assert _digest(bogus) == before


def test_missing_feed_file_is_reported_and_the_other_sources_land(
    run, env: dict[str, str], tmp_path: Path
) -> None:
    run("sources", "add", "gone", str(tmp_path / "missing.xml"))
    run(
        "sources",
        "add",
        "good",
        str(SAMPLE / "feeds" / "markets-wire.rss"),
        "--category",
        "Markets",
    )
    result = run("collect")
    assert result.exit_code == 3
    assert "gone:" in result.output and "missing.xml" in result.output
    assert "good: 2 new" in result.output
    listing = run("signals", "list").output
    assert "Chipmaker guides capex" in listing
    store = Store.open(env["NEWSLETTER_DB"])
    assert store.sources.get("gone")["consecutive_errors"] == 1
    assert store.sources.get("good")["consecutive_errors"] == 0


def test_feed_that_does_not_parse_changes_nothing(run, tmp_path: Path) -> None:
    broken = tmp_path / "broken.xml"
    broken.write_bytes(b"\x00\x01 this is not xml at all <<<")
    run("sources", "add", "broken", str(broken))
    result = run("collect")
    assert result.exit_code == 3
    assert "broken: not a feed" in result.output or "broken: not an RSS" in result.output
    assert run("signals", "list").output.strip() == "no signals match"


def test_bad_annotation_writes_nothing(run, tmp_path: Path) -> None:
    good = tmp_path / "good.md"
    good.write_text("---\nurl: https://example.org/a\ntitle: A\nsignal_score: 50\n---\n")
    bad = tmp_path / "bad.md"
    bad.write_text("---\nurl: https://example.org/b\ntitle: B\nsignal_score: 150\n---\n")
    result = run("signals", "import", str(good), str(bad))
    assert result.exit_code == 1
    assert f"{bad}:4: signal_score:" in result.output
    assert run("signals", "list").output.strip() == "no signals match"


@pytest.mark.parametrize(
    "address", ["not-an-address", "a@b@c.org", "x@example.org\r\nBcc: y@z.org"]
)
def test_invalid_subscriber_address(run, address: str) -> None:
    result = run("subscribers", "add", address)
    assert result.exit_code == 1
    assert len(result.output.strip().splitlines()) == 1
    assert "invalid address" in result.output
    assert "0 active" in run("subscribers", "list").output


def test_send_before_build_names_the_fix(run) -> None:
    result = run("send", "--week", "2026-W24")
    assert result.exit_code == 1
    assert "no dispatch for 2026-W24 and none for any other week" in result.output
    assert "2026-W24 has no signals to build one from (`newsletter collect`" in result.output


def test_bad_week(run) -> None:
    result = run("dispatch", "build", "--week", "2026-W60")
    assert result.exit_code == 2
    assert "2026 has no week 60" in result.output


def test_a_named_env_file_that_does_not_exist_is_a_usage_error(run, tmp_path: Path) -> None:
    missing = tmp_path / "nope" / ".env"
    result = run("--env-file", str(missing), "sources", "list")
    assert result.exit_code == 2
    assert "--env-file" in result.output and str(missing) in result.output
    assert "does not exist" in result.output


def test_the_default_env_file_stays_optional_and_is_read_when_present(run, tmp_path: Path) -> None:
    assert not (tmp_path / ".env").exists()
    assert run("sources", "list").exit_code == 0
    (tmp_path / ".env").write_text("NEWSLETTER_SENDER=carrier-pigeon\n")
    result = run("sources", "list")
    assert result.exit_code == 1 and "NEWSLETTER_SENDER" in result.output
