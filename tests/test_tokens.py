"""Link tokens: strict decoding, binding to a never-reused identity, the migration to nonces
(m007_security) and the operator's rotation."""

from __future__ import annotations

import base64
import hashlib
import hmac
import sqlite3
import time
from pathlib import Path

import pytest
from sqlite_utils import Database

from newsletter.readers.subscriptions import (
    confirm_link_status,
    erase,
    follow_confirm_link,
    follow_unsubscribe_link,
    request_signup,
    rotate_tokens,
)
from newsletter.settings import Settings
from newsletter.store import Store
from newsletter.store.schema import MIGRATIONS, m007_security
from newsletter.tokens import (
    legacy_matches,
    make_token,
    matches,
    new_nonce,
    parse_token,
    unsubscribe_token,
)

SECRET = "test-secret-key-0123456789"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def legacy_token(purpose: str, subscriber_id: int, issued: int) -> str:
    """A link exactly as releases before token nonces made it."""
    body = f"{subscriber_id}.{issued}"
    mac = hmac.new(SECRET.encode(), f"{purpose}:{body}".encode(), hashlib.sha256).digest()[:20]
    return b64(body.encode()) + "." + b64(mac)


# --- decoding -------------------------------------------------------------------------------

GOOD = make_token(SECRET, "confirm", 42, "nonce", issued_at=1_780_000_000)
BODY, MAC = GOOD.split(".")


def test_a_genuine_token_parses_and_matches_only_its_own_nonce() -> None:
    token = parse_token(GOOD)
    assert token is not None and (token.subscriber_id, token.issued) == (42, 1_780_000_000)
    assert matches(SECRET, "confirm", token, "nonce")
    assert not matches(SECRET, "confirm", token, "other-nonce")
    assert not matches(SECRET, "unsubscribe", token, "nonce")
    assert not matches("another-secret", "confirm", token, "nonce")
    assert not legacy_matches(SECRET, "confirm", token)


@pytest.mark.parametrize(
    "text",
    [
        BODY + "==." + MAC,  # padding
        BODY + "." + MAC + "=",
        "bo!dy." + MAC,  # not base64url
        BODY.replace("M", "+", 1) + "." + MAC,  # standard alphabet
        " " + GOOD,
        GOOD + " ",
        GOOD + "\n",
        BODY + " ." + MAC,
        BODY + "." + MAC + ".x",  # extra dots
        BODY + ".." + MAC,
        "." + MAC,
        BODY + ".",
        BODY,
        GOOD + "A" * 100,  # over-long
        BODY + "." + MAC[:-1] + chr(ord(MAC[-1]) + 1),  # stray bits in the last character
        b64(b"01.1780000000") + "." + MAC,  # a leading zero
        b64(b"+1.1780000000") + "." + MAC,  # a sign
        b64(b" 1.1780000000") + "." + MAC,
        b64("١.١".encode()) + "." + MAC,  # digits int() would take
        b64(b"1.2.3") + "." + MAC,
        b64(b"1") + "." + MAC,
        b64(b"-1.0") + "." + MAC,
        b64(b"1_0.0") + "." + MAC,
        b64(b"\xff\xfe.0") + "." + MAC,
        BODY + "." + b64(b"x" * 21),  # a MAC of the wrong length
        "",
    ],
)
def test_anything_but_the_canonical_form_is_not_a_token(text: str) -> None:
    assert parse_token(text) is None


def test_the_legacy_form_is_still_recognised() -> None:
    token = parse_token(legacy_token("unsubscribe", 5, 0))
    assert token is not None
    assert legacy_matches(SECRET, "unsubscribe", token)
    assert not legacy_matches(SECRET, "confirm", token)
    assert not matches(SECRET, "unsubscribe", token, "any")


def test_a_token_cannot_be_made_without_a_nonce() -> None:
    with pytest.raises(ValueError):
        make_token(SECRET, "confirm", 1, "")


# --- identities are never reused ------------------------------------------------------------


def _pending(store: Store, settings: Settings, email: str) -> tuple[int, str, str]:
    notice = request_signup(store, settings, email, limits=False)
    assert notice is not None
    confirm = make_token(
        SECRET, "confirm", notice.subscriber_id, notice.token_nonce, issued_at=int(time.time())
    )
    leave = unsubscribe_token(SECRET, notice.subscriber_id, notice.token_nonce)
    return notice.subscriber_id, confirm, leave


def test_links_of_an_erased_person_never_act_on_who_comes_next(
    store: Store, settings: Settings
) -> None:
    first, old_confirm, old_leave = _pending(store, settings, "first@example.org")
    erase(store, "first@example.org")
    second, _, _ = _pending(store, settings, "second@example.org")
    assert second > first  # AUTOINCREMENT: the erased id is not handed out again
    # even with the id forced back (a database restored from a backup, say), the links fail
    # (with the rows that refer to it: its queued confirmation mail)
    store.db.execute("PRAGMA foreign_keys = OFF")
    for table, column in (("subscribers", "id"), ("notices", "subscriber_id")):
        store.db.execute(
            f"UPDATE {table} SET {column} = ? WHERE {column} = ?",  # noqa: S608
            [first, second],
        )
    store.db.execute("PRAGMA foreign_keys = ON")
    assert confirm_link_status(store, settings, old_confirm) == "invalid"
    assert follow_confirm_link(store, settings, old_confirm) == "invalid"
    assert store.subscribers.get(first)["status"] == "pending"  # type: ignore[index]
    store.subscribers.set_status(first, "active", actor="test")
    assert follow_unsubscribe_link(store, settings, old_leave) == "invalid"
    assert store.subscribers.get(first)["status"] == "active"  # type: ignore[index]


def test_rotating_ends_every_earlier_link(store: Store, settings: Settings) -> None:
    subscriber_id, confirm, leave = _pending(store, settings, "rot@example.org")
    assert confirm_link_status(store, settings, confirm) == "ready"
    assert rotate_tokens(store, "rot@example.org") == 1
    assert follow_confirm_link(store, settings, confirm) == "invalid"
    assert follow_unsubscribe_link(store, settings, leave) == "invalid"
    row = store.subscribers.get(subscriber_id)
    assert row is not None
    fresh = unsubscribe_token(SECRET, subscriber_id, row["token_nonce"])
    assert follow_unsubscribe_link(store, settings, fresh) == "unsubscribed"
    kinds = [e["kind"] for e in store.subscribers.events(subscriber_id)]
    assert "subscriber.tokens_rotated" in kinds


def test_rotate_tokens_cli(run, settings: Settings) -> None:
    assert run("subscribers", "add", "a@example.org", "--confirmed").exit_code == 0
    assert run("subscribers", "add", "b@example.org", "--confirmed").exit_code == 0
    store = Store.open(settings.db)
    before = {r["email"]: r["token_nonce"] for r in store.subscribers.list()}
    store.close()
    one = run("subscribers", "rotate-tokens", "a@example.org")
    assert one.exit_code == 0 and "1 subscriber(s)" in one.output
    everyone = run("subscribers", "rotate-tokens", "--all")
    assert everyone.exit_code == 0 and "2 subscriber(s)" in everyone.output
    store = Store.open(settings.db)
    after = {r["email"]: r["token_nonce"] for r in store.subscribers.list()}
    store.close()
    assert all(after[email] != before[email] for email in before)
    assert run("subscribers", "rotate-tokens").exit_code == 2
    assert run("subscribers", "rotate-tokens", "a@example.org", "--all").exit_code == 2
    unknown = run("subscribers", "rotate-tokens", "nobody@example.org")
    assert unknown.exit_code == 1 and "no such subscriber" in unknown.output


# --- the migration --------------------------------------------------------------------------


def _old_database(path: Path) -> Database:
    """A database as the release before m007_security left it."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA foreign_keys=ON")
    db = Database(conn)
    MIGRATIONS.apply(db, stop_before="m007_security")
    return db


def _insert(db: Database, email: str, status: str = "active", at: str = "") -> int:
    at = at or "2026-06-01T00:00:00+00:00"
    cursor = db.execute(
        "INSERT INTO subscribers (email, name, status, created_at, updated_at)"
        " VALUES (?, NULL, ?, ?, ?)",
        [email, status, at, at],
    )
    db.execute(
        "INSERT INTO events (at, kind, subject_type, subject_id, actor)"
        " VALUES (?, ?, 'subscriber', ?, 'test')",
        [at, f"subscriber.{status}", cursor.lastrowid],
    )
    return int(cursor.lastrowid or 0)


def _old_erase(db: Database, subscriber_id: int, at: str) -> None:
    """What `subscribers erase` did before: the row gone, one event left without a subject."""
    db.execute("DELETE FROM events WHERE subject_id = ?", [subscriber_id])
    db.execute("DELETE FROM subscribers WHERE id = ?", [subscriber_id])
    db.execute(
        "INSERT INTO events (at, kind, subject_type, subject_id, actor)"
        " VALUES (?, 'subscriber.erased', NULL, NULL, 'cli')",
        [at],
    )


def test_the_migration_keeps_old_links_for_their_owners_only(
    tmp_path: Path, settings: Settings
) -> None:
    db = _old_database(tmp_path / "old.db")
    alice = _insert(db, "alice@example.org", at="2026-06-01T00:00:00+00:00")
    mallory = _insert(db, "mallory@example.org", at="2026-06-02T00:00:00+00:00")
    _old_erase(db, mallory, "2026-06-03T00:00:00+00:00")
    # the old schema hands mallory's id to the next person: the bug this migration closes
    victim = _insert(db, "victim@example.org", at="2026-06-04T00:00:00+00:00")
    assert victim == mallory
    top = _insert(db, "top@example.org", at="2026-06-05T00:00:00+00:00")
    _old_erase(db, top, "2026-06-06T00:00:00+00:00")  # erased just before the upgrade
    hostile = _insert(db, "=?utf-8?q?x=0D=0ABcc:_y?=@evil.example", at="2026-06-07T00:00:00+00:00")
    db.execute(
        "INSERT INTO dispatches (week, issue_number, created_at, updated_at)"
        " VALUES ('2026-W23', 1, 'x', 'x')"
    )
    db.execute(
        "INSERT INTO deliveries (dispatch_id, subscriber_id, status, created_at, updated_at)"
        " VALUES (1, ?, 'sent', 'x', 'x')",
        [alice],
    )
    db.conn.close()

    store = Store.open(tmp_path / "old.db")
    settings = settings.replace(db=tmp_path / "old.db")
    sql = store.db.execute("SELECT sql FROM sqlite_master WHERE name = 'subscribers'").fetchone()
    assert "AUTOINCREMENT" in sql[0]
    assert store.db.execute("SELECT subscriber_id FROM deliveries").fetchall() == [(alice,)]
    # alice's old unsubscribe link (from issue 1) still works for her
    assert follow_unsubscribe_link(store, settings, legacy_token("unsubscribe", alice, 0)) == (
        "unsubscribed"
    )
    # mallory's old link names the id the victim inherited: it acts on nobody
    stale = legacy_token("unsubscribe", victim, 0)
    assert follow_unsubscribe_link(store, settings, stale) == "invalid"
    assert store.subscribers.get(victim)["status"] == "active"  # type: ignore[index]
    # nobody gets an id that was ever handed out, not even the one erased last
    new = store.subscribers.add("new@example.org", name=None, status="pending", actor="t")
    assert new > top
    assert store.subscribers.get(hostile)["status"] == "bounced"  # type: ignore[index]
    assert all(row["token_nonce"] for row in store.subscribers.list())

    # run again (a migration killed half-way is finished by the next start): nothing changes
    before = store.db.execute("SELECT * FROM subscribers ORDER BY id").fetchall()
    m007_security(store.db)
    assert store.db.execute("SELECT * FROM subscribers ORDER BY id").fetchall() == before
    store.close()


def test_an_old_confirmation_link_works_once_for_its_owner(
    tmp_path: Path, settings: Settings
) -> None:
    db = _old_database(tmp_path / "old.db")
    now = int(time.time())
    created = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(now - 60))
    pending = _insert(db, "p@example.org", status="pending", at=created)
    db.conn.close()
    store = Store.open(tmp_path / "old.db")
    settings = settings.replace(db=tmp_path / "old.db")
    # issued before the row existed: it was made for someone else
    early = legacy_token("confirm", pending, now - 3600)
    assert confirm_link_status(store, settings, early) == "invalid"
    link = legacy_token("confirm", pending, now)
    assert confirm_link_status(store, settings, link) == "ready"
    assert follow_confirm_link(store, settings, link) == "confirmed"
    assert follow_confirm_link(store, settings, link) == "used"
    store.close()


def test_a_new_nonce_is_random() -> None:
    assert len({new_nonce() for _ in range(100)}) == 100
