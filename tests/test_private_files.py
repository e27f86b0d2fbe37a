"""What holds subscribers, the signing key or readers' links is created for this user only,
whatever the umask: the database and its WAL files, the writers' lock, the outbox, exports."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from newsletter.delivery.senders import FileSender
from newsletter.readers.subscriptions import add_subscriber
from newsletter.store import Store


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    old = os.umask(0o000)  # every file world-writable unless we say otherwise
    try:
        yield
    finally:
        os.umask(old)


def test_the_database_and_its_companions_are_private(
    permissive_umask: None, tmp_path: Path
) -> None:
    existing = tmp_path / "srv"
    existing.mkdir()
    os.chmod(existing, 0o755)  # noqa: S103 - a folder someone else made, as it may be
    path = existing / "data" / "deep" / "newsletter.db"
    store = Store.open(path)
    store.secret_key()  # the generated key, kept in the file
    add_subscriber(store, "a@example.org", confirmed=True)  # writes: WAL, lock file
    for own in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}.writers")):
        assert own.exists(), own
        assert mode(own) == 0o600, (own, oct(mode(own)))
    assert mode(path.parent) == 0o700 and mode(path.parent.parent) == 0o700
    assert mode(existing) == 0o755  # a folder that was there already is left alone
    store.close()


def test_an_older_world_readable_database_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "newsletter.db"
    Store.open(path).close()
    os.chmod(path, 0o644)
    Store.open(path).close()
    assert mode(path) == 0o600


def test_outbox_messages_are_private(
    permissive_umask: None, tmp_path: Path, store: Store, settings
) -> None:
    from newsletter.readers.notices import compose_notice
    from newsletter.readers.subscriptions import Notice

    sender = FileSender(tmp_path / "outbox")
    message = compose_notice(
        settings, "secret", Notice(1, "a@example.org", None, "confirm", 1.0, "nonce")
    )
    [result] = sender.send([message])
    written = Path(str(result.provider_id))
    assert mode(written) == 0o600
    assert mode(written.parent) == 0o700 and mode(tmp_path / "outbox") == 0o700


def test_a_subscriber_export_is_private(permissive_umask: None, run, tmp_path: Path) -> None:
    assert run("subscribers", "add", "a@example.org", "--confirmed").exit_code == 0
    assert run("subscribers", "export", "--output", "people.csv").exit_code == 0
    assert mode(tmp_path / "people.csv") == 0o600
    assert "a@example.org" in (tmp_path / "people.csv").read_text()
