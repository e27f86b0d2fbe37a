"""Queries on notices: mail owed to one reader outside the dispatch (a confirmation, "you are
already subscribed", later a welcome), queued in the same transaction as what caused it and
moved through the same states as a delivery: queued, sending, sent, failed or unknown.

A claim records who took the notice (`host:pid`), so a notice left `sending` by a process that
died is recognised by any other; `first_handed_at` is when its identity (Message-ID) was first
handed over, `handed_at` the latest hand-off. Writes take the subscribers' writer lock, since
web workers queue notices while others send them.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from newsletter.store._rows import now_iso, rows
from newsletter.store.deliveries import _pid_alive

if TYPE_CHECKING:
    from sqlite_utils import Database

STATUSES = ("queued", "sending", "sent", "failed", "unknown")
#: a notice `sending` this long under a claimer on another host is taken as abandoned
ABANDONED_AFTER = 600.0


@dataclass(frozen=True)
class OwedNotice:
    id: int
    subscriber_id: int
    email: str
    name: str | None
    subscriber_status: str
    kind: str
    issued_at: float
    message_id: str | None
    attempts: int
    first_handed_at: float | None
    handed_at: float | None
    #: the subscriber's token nonce now: the links in the mail are signed with it
    token_nonce: str = field(default="", repr=False)


@dataclass(frozen=True)
class NoticeOutcome:
    """status: sent | failed | unknown | queued (with `retry_at`, or at once)."""

    notice_id: int
    status: str
    provider_id: str | None = None
    error: str | None = None
    retry_at: float | None = None
    handed: bool = True


def owner() -> str:
    """Who claims a notice: this host and process."""
    return f"{socket.gethostname()}:{os.getpid()}"


# `email`: where the notice goes, its own `to_email` when it has one (a new address asked for,
# the old one after a change), else the subscriber's address
_SELECT = (
    "SELECT n.id, n.subscriber_id, coalesce(n.to_email, s.email), s.name, s.status, n.kind,"
    " n.issued_at, n.message_id, n.attempts, n.first_handed_at, n.handed_at, s.token_nonce"
    " FROM notices n JOIN subscribers s ON s.id = n.subscriber_id"
)


def _owed(found: Iterable[Sequence[Any]]) -> list[OwedNotice]:
    return [OwedNotice(*row) for row in found]


class Notices:
    def __init__(self, db: Database) -> None:
        self.db = db

    def queue(
        self,
        subscriber_id: int,
        kind: str,
        *,
        issued_at: float | None = None,
        owed: bool = True,
        to_email: str | None = None,
    ) -> int:
        """Owe `subscriber_id` a notice of `kind` (inside the caller's transaction).

        `owed=False` runs the same statement and inserts nothing: a sign-up that owes no mail
        does the same work as one that does (its timing tells a visitor nothing). `to_email`:
        the address it goes to when that is not the subscriber's own.
        """
        now = now_iso()
        issued = time.time() if issued_at is None else issued_at
        cursor = self.db.execute(
            "INSERT INTO notices (subscriber_id, kind, status, issued_at, created_at, updated_at,"
            " to_email) SELECT ?, ?, 'queued', ?, ?, ?, ? WHERE ?",
            [subscriber_id, kind, issued, now, now, to_email, owed],
        )
        return int(cursor.lastrowid or 0) if owed else 0

    def get(self, notice_id: int) -> OwedNotice | None:
        found = _owed(self.db.execute(_SELECT + " WHERE n.id = ?", [notice_id]).fetchall())
        return found[0] if found else None

    def claim_due(
        self, *, now: float, limit: int, claimer: str, new_id: Callable[[], str]
    ) -> list[OwedNotice]:
        """Take up to `limit` queued notices that are due, marking them `sending` under
        `claimer`; each gets its Message-ID now if it has none (the same on every retry)."""
        with self.db.atomic():
            picked = self.db.execute(
                "SELECT id, message_id FROM notices WHERE status = 'queued'"
                " AND (retry_at IS NULL OR retry_at <= ?) ORDER BY coalesce(retry_at, 0), id"
                " LIMIT ?",
                [now, limit],
            ).fetchall()
            stamp = now_iso()
            self.db.conn.executemany(
                "UPDATE notices SET status = 'sending', attempts = attempts + 1, handing = 0,"
                " message_id = coalesce(message_id, ?), claimed_by = ?, retry_at = NULL,"
                " first_handed_at = coalesce(first_handed_at, ?), handed_at = ?, updated_at = ?"
                " WHERE id = ? AND status = 'queued'",
                [(mid or new_id(), claimer, now, now, stamp, nid) for nid, mid in picked],
            )
            if not picked:
                return []
            marks = ",".join("?" * len(picked))
            return _owed(
                self.db.execute(
                    _SELECT + f" WHERE n.id IN ({marks}) AND n.claimed_by = ?"
                    " AND n.status = 'sending' ORDER BY n.id",
                    [nid for nid, _ in picked] + [claimer],
                ).fetchall()
            )

    def handing(self, notice_id: int, *, now: float) -> None:
        """The claimed notice is about to be handed over: from now on, if this process dies
        before recording the outcome, nobody can tell whether it arrived."""
        self.db.execute(
            "UPDATE notices SET handing = 1, handed_at = ?, updated_at = ?"
            " WHERE id = ? AND status = 'sending'",
            [now, now_iso(), notice_id],
        )

    def claim_repeat(self, notice_id: int, *, now: float, claimer: str) -> bool:
        """Take an unknown notice to hand the same message over again (idempotent senders)."""
        return (
            self.db.execute(
                "UPDATE notices SET status = 'sending', attempts = attempts + 1, claimed_by = ?,"
                " handing = 1, handed_at = ?, updated_at = ? WHERE id = ? AND status = 'unknown'",
                [claimer, now, now_iso(), notice_id],
            ).rowcount
            == 1
        )

    def record(self, outcomes: Iterable[NoticeOutcome]) -> None:
        now = now_iso()
        with self.db.atomic():
            self.db.conn.executemany(
                "UPDATE notices SET status = ?, handing = 0,"
                " provider_message_id = coalesce(?, provider_message_id), last_error = ?,"
                " retry_at = ?, attempts = attempts - ?, sent_at = coalesce(?, sent_at),"
                " claimed_by = NULL, updated_at = ? WHERE id = ?",
                [
                    (
                        o.status,
                        o.provider_id,
                        (o.error or "")[:1000] or None,
                        o.retry_at if o.status == "queued" else None,
                        0 if o.handed else 1,
                        now if o.status == "sent" else None,
                        now,
                        o.notice_id,
                    )
                    for o in outcomes
                ],
            )

    def abandoned_to_unknown(self, *, now: float) -> int:
        """Notices left `sending` by a process that is gone. One whose hand-off had begun may
        have arrived: it becomes unknown. One only claimed (others of its claim were being
        handed over) never left: it goes back to the queue, its attempt not counted.

        A claimer on this host is gone when its process is; a claim from another host counts
        as abandoned after `ABANDONED_AFTER` seconds. Returns how many became unknown.
        """
        found = self.db.execute(
            "SELECT id, claimed_by, handed_at, handing FROM notices WHERE status = 'sending'"
        ).fetchall()
        dead = [
            (nid, handing)
            for nid, claimer, handed, handing in found
            if not _alive(claimer or "") or (handed or 0) < now - ABANDONED_AFTER
        ]
        stamp = now_iso()
        self.db.conn.executemany(
            "UPDATE notices SET status = 'unknown', claimed_by = NULL, last_error = 'no answer"
            " recorded: the process sending it stopped', updated_at = ? WHERE id = ?"
            " AND status = 'sending'",
            [(stamp, nid) for nid, handing in dead if handing],
        )
        self.db.conn.executemany(
            "UPDATE notices SET status = 'queued', claimed_by = NULL, attempts = attempts - 1,"
            " updated_at = ? WHERE id = ? AND status = 'sending'",
            [(stamp, nid) for nid, handing in dead if not handing],
        )
        return sum(1 for _, handing in dead if handing)

    def unknown(self) -> list[OwedNotice]:
        return _owed(self.db.execute(_SELECT + " WHERE n.status = 'unknown' ORDER BY n.id"))

    def next_due(self) -> float | None:
        """When the earliest queued notice may go (now, if one is not waiting for a retry)."""
        row = self.db.execute(
            "SELECT min(coalesce(retry_at, 0)) FROM notices WHERE status = 'queued'"
        ).fetchone()
        return None if row[0] is None else float(row[0])

    def sending(self) -> int:
        return int(
            self.db.execute("SELECT count(*) FROM notices WHERE status = 'sending'").fetchone()[0]
        )

    def counts(self) -> dict[str, int]:
        found = dict(
            self.db.execute("SELECT status, count(*) FROM notices GROUP BY status").fetchall()
        )
        return {status: found.get(status, 0) for status in STATUSES}

    def for_subscriber(self, subscriber_id: int) -> list[dict[str, Any]]:
        return list(
            rows(
                self.db,
                "SELECT * FROM notices WHERE subscriber_id = ? ORDER BY id",
                [subscriber_id],
            )
        )


def _alive(claimer: str) -> bool:
    host, _, pid = claimer.rpartition(":")
    if host != socket.gethostname():
        return True  # another host: judged by the age of its claim
    return pid.isdigit() and _pid_alive(int(pid))
