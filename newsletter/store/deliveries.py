"""Queries on deliveries: a row per (dispatch, subscriber), written around each hand-off, and the
lease that lets only one process send a dispatch at a time.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from newsletter.models import Subscriber
from newsletter.store._rows import now_iso, one, rows

if TYPE_CHECKING:
    from sqlite_utils import Database

STATUSES = ("queued", "sending", "sent", "failed", "unknown", "skipped")


@dataclass(frozen=True)
class Outcome:
    """What became of one hand-off, recorded after the sender answered."""

    delivery_id: int
    status: str  # sent | failed
    attempts: int = 1
    provider_id: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class Lease:
    dispatch_id: int
    holder: str
    host: str
    pid: int


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Deliveries:
    def __init__(self, db: Database) -> None:
        self.db = db

    def queue(self, dispatch_id: int) -> int:
        """Queue a delivery for each active subscriber not yet queued; return how many."""
        now = now_iso()
        cursor = self.db.execute(
            "INSERT OR IGNORE INTO deliveries (dispatch_id, subscriber_id, status, created_at,"
            " updated_at) SELECT ?, id, 'queued', ?, ? FROM subscribers WHERE status = 'active'",
            [dispatch_id, now, now],
        )
        return cursor.rowcount

    def in_flight_to_unknown(self, dispatch_id: int) -> int:
        """Rows left 'sending' by a killed run: we cannot know if they went out."""
        return self.db.execute(
            "UPDATE deliveries SET status = 'unknown', last_error = 'in flight when a run stopped',"
            " updated_at = ? WHERE dispatch_id = ? AND status = 'sending'",
            [now_iso(), dispatch_id],
        ).rowcount

    def skip_inactive(self, dispatch_id: int) -> int:
        """Queued deliveries whose subscriber left (unsubscribed, bounced) are never sent."""
        return self.db.execute(
            "UPDATE deliveries SET status = 'skipped', last_error = 'subscriber no longer active',"
            " updated_at = ? WHERE dispatch_id = ? AND status = 'queued' AND subscriber_id IN"
            " (SELECT id FROM subscribers WHERE status != 'active')",
            [now_iso(), dispatch_id],
        ).rowcount

    def requeue(self, dispatch_id: int, status: str) -> int:
        return self.db.execute(
            "UPDATE deliveries SET status = 'queued', updated_at = ?"
            " WHERE dispatch_id = ? AND status = ?",
            [now_iso(), dispatch_id, status],
        ).rowcount

    def next_queued(
        self, dispatch_id: int, limit: int, *, after_id: int = 0
    ) -> list[tuple[int, Subscriber]]:
        """Queued deliveries whose subscriber is still active, in id order after `after_id`."""
        cursor = self.db.execute(
            "SELECT d.id, s.id, s.email, s.name, s.status"
            " FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id"
            " WHERE d.dispatch_id = ? AND d.status = 'queued' AND d.id > ?"
            " AND s.status = 'active' ORDER BY d.id LIMIT ?",
            [dispatch_id, after_id, limit],
        )
        return [(row[0], Subscriber(*row[1:])) for row in cursor.fetchall()]

    def mark_sending(self, delivery_id: int, message_id: str) -> bool:
        """Claim a queued delivery; False when it is no longer queued or its subscriber left."""
        cursor = self.db.execute(
            "UPDATE deliveries SET status = 'sending', attempts = attempts + 1, message_id = ?,"
            " updated_at = ? WHERE id = ? AND status = 'queued' AND EXISTS (SELECT 1 FROM"
            " subscribers s WHERE s.id = deliveries.subscriber_id AND s.status = 'active')",
            [message_id, now_iso(), delivery_id],
        )
        return cursor.rowcount == 1

    def claim(self, pairs: Sequence[tuple[int, str]]) -> set[int]:
        """Mark many deliveries `sending` in one durable commit; return the ids claimed.

        A row is claimed only while queued and while its subscriber is still active, so an
        unsubscribe that landed a moment ago is respected.
        """
        now = now_iso()
        with self.db.atomic():
            cursor = self.db.conn.executemany(
                "UPDATE deliveries SET status = 'sending', attempts = attempts + 1,"
                " message_id = ?, updated_at = ? WHERE id = ? AND status = 'queued' AND EXISTS"
                " (SELECT 1 FROM subscribers s WHERE s.id = deliveries.subscriber_id"
                " AND s.status = 'active')",
                [(message_id, now, delivery_id) for delivery_id, message_id in pairs],
            )
            if cursor.rowcount == len(pairs):
                return {delivery_id for delivery_id, _ in pairs}
            claimed = set()
            for delivery_id, message_id in pairs:
                row = self.db.execute(
                    "SELECT status, message_id FROM deliveries WHERE id = ?", [delivery_id]
                ).fetchone()
                if row == ("sending", message_id):
                    claimed.add(delivery_id)
            return claimed

    def record(self, outcomes: Iterable[Outcome]) -> None:
        """Write what the sender answered, in one commit."""
        now = now_iso()
        with self.db.atomic():
            self.db.conn.executemany(
                "UPDATE deliveries SET status = ?, provider_message_id = ?, last_error = ?,"
                " attempts = attempts + ?, sent_at = ?, updated_at = ? WHERE id = ?",
                [
                    (
                        o.status,
                        o.provider_id,
                        (o.error or "")[:1000] or None,
                        max(o.attempts - 1, 0),
                        now if o.status == "sent" else None,
                        now,
                        o.delivery_id,
                    )
                    for o in outcomes
                ],
            )

    def mark_sent(self, delivery_id: int, provider_message_id: str | None = None) -> None:
        self.record([Outcome(delivery_id, "sent", provider_id=provider_message_id)])

    def mark_failed(self, delivery_id: int, error: str, *, retry: bool) -> None:
        self.db.execute(
            "UPDATE deliveries SET status = ?, last_error = ?, updated_at = ? WHERE id = ?",
            ["queued" if retry else "failed", error[:1000], now_iso(), delivery_id],
        )

    def counts(self, dispatch_id: int) -> dict[str, int]:
        found = dict(
            self.db.execute(
                "SELECT status, count(*) FROM deliveries WHERE dispatch_id = ? GROUP BY status",
                [dispatch_id],
            ).fetchall()
        )
        return {status: found.get(status, 0) for status in STATUSES}

    def failures(self, dispatch_id: int, limit: int | None = None) -> list[dict[str, Any]]:
        """Failed and unknown deliveries with their reasons, oldest first."""
        return list(
            rows(
                self.db,
                "SELECT d.*, s.email FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id"
                " WHERE d.dispatch_id = ? AND d.status IN ('failed', 'unknown') ORDER BY d.id"
                " LIMIT ?",
                [dispatch_id, -1 if limit is None else limit],
            )
        )

    # -- the lease: one sending process per dispatch ------------------------------------------

    def acquire_lease(self, dispatch_id: int, ttl: float) -> Lease | None:
        """Take the dispatch's lease, or None while another live process holds it.

        A lease expires `ttl` seconds after its last renewal; one left by a dead process on this
        host is taken at once, so a restart after a crash need not wait.
        """
        host, pid = socket.gethostname(), os.getpid()
        holder = f"{host}:{pid}:{os.urandom(4).hex()}"
        current = self.lease_of(dispatch_id)
        stale = ""
        if current and current["host"] == host and not _pid_alive(current["pid"]):
            stale = current["holder"]
        now = time.time()
        self.db.execute(
            "INSERT INTO delivery_leases (dispatch_id, holder, host, pid, acquired_at, expires_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(dispatch_id) DO UPDATE SET"
            " holder = excluded.holder, host = excluded.host, pid = excluded.pid,"
            " acquired_at = excluded.acquired_at, expires_at = excluded.expires_at"
            " WHERE delivery_leases.expires_at < ? OR delivery_leases.holder = ?",
            [dispatch_id, holder, host, pid, now_iso(), now + ttl, now, stale],
        )
        got = self.lease_of(dispatch_id)
        if got is None or got["holder"] != holder:
            return None
        return Lease(dispatch_id, holder, host, pid)

    def renew_lease(self, lease: Lease, ttl: float) -> bool:
        """Extend the lease; False when it was lost (expired and taken by another process)."""
        return (
            self.db.execute(
                "UPDATE delivery_leases SET expires_at = ? WHERE dispatch_id = ? AND holder = ?",
                [time.time() + ttl, lease.dispatch_id, lease.holder],
            ).rowcount
            == 1
        )

    def release_lease(self, lease: Lease) -> None:
        self.db.execute(
            "DELETE FROM delivery_leases WHERE dispatch_id = ? AND holder = ?",
            [lease.dispatch_id, lease.holder],
        )

    def lease_of(self, dispatch_id: int) -> dict[str, Any] | None:
        return one(self.db, "SELECT * FROM delivery_leases WHERE dispatch_id = ?", [dispatch_id])
