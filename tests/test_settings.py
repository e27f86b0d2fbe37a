"""Settings: defaults that work, one clear line for a bad value, secrets kept out of repr."""

from __future__ import annotations

from pathlib import Path

import pytest

from newsletter.errors import SettingsError
from newsletter.settings import SETTINGS, env_example, load_settings, settings_table

ROOT = Path(__file__).parent.parent


def test_defaults_need_no_environment() -> None:
    settings = load_settings({}, env_file=None)
    assert settings.sender == "file"
    assert settings.db == Path("newsletter.db")
    assert settings.timezone.key == "UTC"


def test_env_example_lists_every_setting_with_its_default() -> None:
    assert (ROOT / ".env.example").read_text() == env_example() + "\n"
    for spec in SETTINGS:
        assert f"{spec.env}={spec.default}" in env_example()


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("NEWSLETTER_TIMEZONE", "Mars/Olympus", "unknown timezone"),
        ("NEWSLETTER_SENDER", "pigeon", "must be one of"),
        ("NEWSLETTER_CONCURRENCY", "zero", "whole number"),
        ("NEWSLETTER_CONCURRENCY", "0", "between 1 and 64"),
        ("NEWSLETTER_SEND_PROCESSES", "17", "between 0 and 16"),
        ("NEWSLETTER_SEND_PROCESSES", "two", "whole number"),
        ("NEWSLETTER_FROM", "not an address", "expected one address"),
        ("NEWSLETTER_FROM", "A <a@b.org>\r\nBcc: x@y.org", "line breaks"),
        ("NEWSLETTER_FROM", "=?utf-8?b?QQ0KQmNjOiB4QHkub3Jn?= <a@b.org>", "as plain text"),
        ("NEWSLETTER_TRUSTED_PROXY", "the proxy", "an IP address or *"),
        ("NEWSLETTER_WEB_CHANNEL_TIMEOUT", "0", "between 1 and 3600"),
        ("NEWSLETTER_PUBLIC_URL", "ftp://example.org", "http(s) URL"),
        ("NEWSLETTER_AUTO_APPROVE", "maybe", "true or false"),
        ("NEWSLETTER_ACCENT_COLOR", "blue", "hex colour"),
    ],
)
def test_invalid_value_names_the_setting(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({name: value}, env_file=None)
    text = str(caught.value)
    assert text.startswith(f"{name}: ")
    assert message in text
    assert "\n" not in text


def test_env_file_is_read_and_environment_wins(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("NEWSLETTER_NAME=From File\nNEWSLETTER_RATE=5\n")
    settings = load_settings({"NEWSLETTER_RATE": "7"}, env_file=env_file)
    assert settings.name == "From File"
    assert settings.rate == 7.0


def test_api_sender_without_its_credential_is_refused() -> None:
    with pytest.raises(SettingsError, match="POSTMARK_SERVER_TOKEN: required"):
        load_settings({"NEWSLETTER_SENDER": "postmark"}, env_file=None)


def test_secrets_never_appear_in_repr() -> None:
    settings = load_settings(
        {"NEWSLETTER_SMTP_PASSWORD": "hunter2-secret", "NEWSLETTER_SECRET_KEY": "k3y-secret"},
        env_file=None,
    )
    assert "hunter2-secret" not in repr(settings)
    assert "k3y-secret" not in repr(settings)


def test_bad_setting_stops_a_command_with_one_line(run) -> None:
    result = run("init", extra_env={"NEWSLETTER_TIMEZONE": "Nowhere/Else"})
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: NEWSLETTER_TIMEZONE: unknown timezone 'Nowhere/Else'"
        " (use an IANA name like Europe/Paris)"
    ]


def test_readme_settings_table_lists_every_setting() -> None:
    readme = (ROOT / "README.md").read_text()
    start = readme.index("<!-- settings:start -->") + len("<!-- settings:start -->")
    end = readme.index("<!-- settings:end -->")
    assert readme[start:end].strip() == settings_table()
