"""Queries on subscribers; every status change is also written to the event log."""

from __future__ import annotations

import fcntl
import hashlib
import json
import random
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from newsletter.models import Subscriber
from newsletter.private_files import open_file
from newsletter.store._rows import now_iso, one, rows
from newsletter.tokens import new_nonce

if TYPE_CHECKING:
    from sqlite_utils import Database

STATUSES = ("pending", "active", "unsubscribed", "bounced", "complained")

# Writers take turns through a lock that wakes the next one at once. SQLite's own busy
# handler backs off in sleeps of up to 100 ms, so web workers racing for its write lock make
# a slow tail. A thread lock orders one process's threads; a flock on `<db>.writers` orders
# the worker processes.
_WRITER = threading.Lock()


class Subscribers:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._lock_file: IO[bytes] | None = None

    def _file_lock(self) -> int | None:
        if self._lock_file is None:
            row = self.db.execute("PRAGMA database_list").fetchone()
            path = row[2] if row else ""
            if not path:  # an in-memory database has one connection: nothing to order
                return None
            self._lock_file = open_file(Path(path + ".writers"), "ab")  # held for life
        return self._lock_file.fileno()

    @contextmanager
    def writing(self) -> Iterator[None]:
        """A store transaction (write lock taken up front, like every one) whose turn among
        the writers (web workers, the processes of a split send) comes through a file lock that
        wakes the next at once, not SQLite's busy handler, which sleeps between tries.
        """
        if self.db.conn.in_transaction:
            yield
            return
        with _WRITER:
            fd = self._file_lock()
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                with self.db.atomic():  # BEGIN IMMEDIATE
                    yield
            finally:
                if fd is not None:
                    fcntl.flock(fd, fcntl.LOCK_UN)

    def get(self, subscriber_id: int) -> dict[str, Any] | None:
        return one(self.db, "SELECT * FROM subscribers WHERE id = ?", [subscriber_id])

    def get_by_email(self, email: str) -> dict[str, Any] | None:
        return one(self.db, "SELECT * FROM subscribers WHERE email = ?", [email])

    def add(
        self,
        email: str,
        *,
        name: str | None,
        status: str,
        actor: str,
        consent_text: str | None = None,
        consent_ip: str | None = None,
        consent_form: str | None = None,
        token_nonce: str | None = None,
        sections_off: Iterable[str] = (),
    ) -> int:
        """Insert a new subscriber (the caller has checked the address is not known).

        Ids are AUTOINCREMENT (never handed out twice) and every row has its own token nonce.
        """
        now = now_iso()
        cursor = self.db.execute(
            "INSERT INTO subscribers (email, name, status, created_at, updated_at, confirmed_at,"
            " consent_text, consent_ip, consent_form, signup_source, token_nonce, sections_off)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                email,
                name,
                status,
                now,
                now,
                now if status == "active" else None,
                consent_text,
                consent_ip,
                consent_form,
                actor,
                token_nonce or new_nonce(),
                _titles(sections_off),
            ],
        )
        subscriber_id = int(cursor.lastrowid or 0)
        self._log(subscriber_id, f"subscriber.{status}", actor, consent=consent_text, ip=consent_ip)
        return subscriber_id

    def sign_up(
        self,
        email: str,
        *,
        name: str | None,
        actor: str,
        consent_text: str | None,
        consent_ip: str | None,
        consent_form: str | None,
        sections_off: Iterable[str] = (),
    ) -> tuple[dict[str, Any], bool]:
        """A sign-up from the form: a new pending row, or the known one stamped with the time.

        One statement either way (an upsert), so a new and a known address cost the same work
        and take the same time. Returns (id, status, token_nonce) and whether it was new;
        nothing is logged (the caller logs one event on either path). `sections_off` (the
        sections the form's ticks left out) is kept for a new row only: a known reader's
        choices are theirs to change, from their preferences page.
        """
        nonce, now = new_nonce(), now_iso()
        row = self.db.execute(
            "INSERT INTO subscribers (email, name, status, created_at, updated_at,"
            " consent_text, consent_ip, consent_form, signup_source, token_nonce, last_signup_at,"
            " sections_off) VALUES (?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT(email) DO UPDATE SET last_signup_at = excluded.last_signup_at"
            " RETURNING id, status, token_nonce",
            [
                email,
                name,
                now,
                now,
                consent_text,
                consent_ip,
                consent_form,
                actor,
                nonce,
                now,
                _titles(sections_off),
            ],
        ).fetchone()
        found = {"id": row[0], "status": row[1], "token_nonce": row[2]}
        return found, row[2] == nonce

    def set_status(self, subscriber_id: int, status: str, *, actor: str, reason: str = "") -> None:
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        now = now_iso()
        stamp = {"active": "confirmed_at", "unsubscribed": "unsubscribed_at"}.get(status)
        extra = f", {stamp} = ?" if stamp else ""
        params = [status, now, *([now] if stamp else []), subscriber_id]
        self.db.execute(
            f"UPDATE subscribers SET status = ?, updated_at = ?{extra} WHERE id = ?",  # noqa: S608
            params,
        )
        self._log(subscriber_id, f"subscriber.{status}", actor, reason=reason or None)

    def update(self, subscriber_id: int, *, name: str | None, actor: str, **detail: Any) -> None:
        """A new name (or consent) for someone already known; logged like a status change."""
        self.db.execute(
            "UPDATE subscribers SET name = coalesce(?, name), updated_at = ? WHERE id = ?",
            [name, now_iso(), subscriber_id],
        )
        self._log(subscriber_id, "subscriber.updated", actor, **detail)

    def rotate_tokens(self, subscriber_id: int | None, *, actor: str) -> int:
        """A new token nonce for one subscriber (None: everyone): every link made before stops
        working, old-format ones included. Returns how many were rotated."""
        ids = (
            [subscriber_id]
            if subscriber_id is not None
            else [row[0] for row in self.db.execute("SELECT id FROM subscribers")]
        )
        now = now_iso()
        for one_id in ids:
            self.db.execute(
                "UPDATE subscribers SET token_nonce = ?, legacy_links = 0, updated_at = ?"
                " WHERE id = ?",
                [new_nonce(), now, one_id],
            )
            self._log(one_id, "subscriber.tokens_rotated", actor)
        return len(ids)

    def log(self, subscriber_id: int, kind: str, actor: str, **detail: Any) -> None:
        """Record something that happened to a subscriber without changing them."""
        self._log(subscriber_id, kind, actor, **detail)

    def claim_notice(self, subscriber_id: int, now: float, every: float) -> bool:
        """Atomically take the right to mail this person a notice (at most one per `every` s)."""
        cursor = self.db.execute(
            "UPDATE subscribers SET notice_sent_at = ? WHERE id = ?"
            " AND (notice_sent_at IS NULL OR notice_sent_at <= ?)",
            [now, subscriber_id, now - every],
        )
        return cursor.rowcount == 1

    def release_notice(self, subscriber_id: int, claimed_at: float) -> None:
        """The notice could not be sent: let the next sign-up try again at once."""
        self.db.execute(
            "UPDATE subscribers SET notice_sent_at = NULL WHERE id = ? AND notice_sent_at = ?",
            [subscriber_id, claimed_at],
        )

    def events(self, subscriber_id: int) -> list[dict[str, Any]]:
        return list(
            rows(
                self.db,
                "SELECT at, kind, actor, detail FROM events"
                " WHERE subject_type = 'subscriber' AND subject_id = ? ORDER BY id",
                [subscriber_id],
            )
        )

    def erase(self, subscriber_id: int, email: str, *, actor: str) -> None:
        """Delete the person's row, deliveries and history; keep only a hash of the address."""
        self.db.execute(
            "DELETE FROM events WHERE subject_type = 'subscriber' AND subject_id = ?",
            [subscriber_id],
        )
        self.db.execute("DELETE FROM deliveries WHERE subscriber_id = ?", [subscriber_id])
        self.db.execute("DELETE FROM subscribers WHERE id = ?", [subscriber_id])
        self.db.execute(
            "INSERT OR REPLACE INTO erased_addresses (email_hash, erased_at) VALUES (?, ?)",
            [address_hash(email), now_iso()],
        )
        self.db.execute(
            "INSERT INTO events (at, kind, subject_type, subject_id, actor, detail)"
            " VALUES (?, 'subscriber.erased', NULL, NULL, ?, NULL)",
            [now_iso(), actor],
        )

    def is_erased(self, email: str) -> bool:
        found = self.db.execute(
            "SELECT 1 FROM erased_addresses WHERE email_hash = ?", [address_hash(email)]
        ).fetchone()
        return found is not None

    def forget_erasure(self, email: str) -> None:
        """The person signed up again and confirmed: a new consent replaces the old refusal."""
        self.db.execute("DELETE FROM erased_addresses WHERE email_hash = ?", [address_hash(email)])

    def hit_rate_limit(self, key: str, limit: int, window: int, now: float) -> bool:
        """Count one request against `key`; True while within `limit` per fixed `window` s.

        Kept in SQLite so every worker process shares the same counters.
        """
        start = int(now) - int(now) % window
        count = self.db.execute(
            "INSERT INTO rate_limits (key, window_start, count) VALUES (?, ?, 1)"
            " ON CONFLICT(key) DO UPDATE SET"
            " count = CASE WHEN window_start = excluded.window_start THEN count + 1 ELSE 1 END,"
            " window_start = excluded.window_start"
            " RETURNING count",
            [key, start],
        ).fetchone()[0]
        if random.random() < 0.001:  # now and then, drop counters of windows long gone
            self.db.execute("DELETE FROM rate_limits WHERE window_start < ?", [start - window])
        return int(count) <= limit

    def _log(self, subscriber_id: int, kind: str, actor: str, **detail: Any) -> None:
        detail = {k: v for k, v in detail.items() if v is not None}
        self.db.execute(
            "INSERT INTO events (at, kind, subject_type, subject_id, actor, detail)"
            " VALUES (?, ?, 'subscriber', ?, ?, ?)",
            [now_iso(), kind, subscriber_id, actor, json.dumps(detail) if detail else None],
        )

    def list(
        self,
        *,
        status: str | None = None,
        search: str | None = None,
        since: str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Subscribers by id, filtered by status, a substring of address or name, sign-up date."""
        where, params = [], []
        if status:
            where.append("status = ?")
            params.append(status)
        if search:
            where.append("(instr(lower(email), lower(?)) OR instr(lower(name), lower(?)))")
            params += [search, search]
        if since:
            where.append("created_at >= ?")
            params.append(since)
        sql = "SELECT * FROM subscribers"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return list(rows(self.db, sql, params))

    def counts(self) -> dict[str, int]:
        found = dict(
            self.db.execute("SELECT status, count(*) FROM subscribers GROUP BY status").fetchall()
        )
        return {status: found.get(status, 0) for status in STATUSES}

    # --- preferences (issue 14): each change is logged by the caller with its source ------

    def set_sections(self, subscriber_id: int, off: Iterable[str], seen: Iterable[str]) -> None:
        """The sections this reader turned off, and those they have now been shown."""
        self.db.execute(
            "UPDATE subscribers SET sections_off = ?, sections_seen = ?, updated_at = ?"
            " WHERE id = ?",
            [_titles(off), _titles(seen), now_iso(), subscriber_id],
        )

    def set_pause(self, subscriber_id: int, until: float | None) -> None:
        """No dispatch until `until` (Unix time); None: not paused."""
        self.db.execute(
            "UPDATE subscribers SET paused_until = ?, updated_at = ? WHERE id = ?",
            [until, now_iso(), subscriber_id],
        )

    def ask_email_change(self, subscriber_id: int, email: str | None, at: float | None) -> None:
        """Keep a new address until it confirms (None: forget the one asked for)."""
        self.db.execute(
            "UPDATE subscribers SET pending_email = ?, pending_email_at = ?, updated_at = ?"
            " WHERE id = ?",
            [email, at, now_iso(), subscriber_id],
        )

    def change_email(self, subscriber_id: int, email: str) -> None:
        """The new address confirmed: it replaces the old one, and every link made before
        (all of them went to the old address) stops working."""
        self.db.execute(
            "UPDATE subscribers SET email = ?, pending_email = NULL, pending_email_at = NULL,"
            " token_nonce = ?, legacy_links = 0, notice_sent_at = NULL, updated_at = ?"
            " WHERE id = ?",
            [email, new_nonce(), now_iso(), subscriber_id],
        )

    def iter_active(self, batch: int = 1000) -> Iterator[Subscriber]:
        """Page through active subscribers by id, never holding them all in memory."""
        after = 0
        while True:
            page = list(
                rows(
                    self.db,
                    "SELECT id, email, name, status, token_nonce, sections_off, paused_until"
                    " FROM subscribers WHERE status = 'active' AND id > ? ORDER BY id LIMIT ?",
                    [after, batch],
                )
            )
            if not page:
                return
            for row in page:
                yield Subscriber.from_row(row)
            after = page[-1]["id"]


def _titles(titles: Iterable[str]) -> str:
    return json.dumps(sorted(set(titles)), ensure_ascii=False)


def address_hash(email: str) -> str:
    """What is kept of an erased address: enough to recognise it, not to read it."""
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()
