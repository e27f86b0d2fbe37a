"""Queries on deliveries: a row per (dispatch, subscriber), written around each hand-off, and the
lease that lets only one process send a dispatch at a time.

A row's columns are the delivery state machine's memory (see `newsletter.delivery.deliver`):
`message_id` and `batch_key` are its identity, fixed when it is claimed and kept across retries;
`batch_since` is when that batch key was first handed over (idempotency keys expire), and
`handed_at` the latest hand-off (provider records lag behind it); `retry_at` holds a queued row
back until its backoff is over; `failure` says whether a failed row is final.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from newsletter.models import Subscriber, parse_sections_off
from newsletter.store._rows import now_iso, one, references_unchecked, rows

if TYPE_CHECKING:
    from sqlite_utils import Database

#: the holders of the leases runs in this process hold now
_HELD: set[str] = set()

STATUSES = ("queued", "sending", "sent", "failed", "unknown", "skipped")
FAILURES = ("permanent", "temporary")


@dataclass(frozen=True)
class Pending:
    """A row to hand over (or to resolve), with what it needs to compose its message again."""

    delivery_id: int
    subscriber: Subscriber
    message_id: str | None
    attempts: int
    batch_key: str | None = None
    batch_since: float | None = None
    handed_at: float | None = None
    #: the variant it was composed from at its first claim (None: not claimed yet)
    variant_id: int | None = None


@dataclass(frozen=True)
class Claim:
    delivery_id: int
    message_id: str
    batch_key: str
    variant_id: int | None = None


@dataclass(frozen=True)
class Outcome:
    """What became of one hand-off (or of its lookup), recorded after the answer.

    status: sent | failed | unknown | queued. A queued outcome waits until `retry_at` (a
    temporary failure's backoff) or goes again at once; `handed=False` when the message was
    not handed over after all (the sender stopped first), so the attempt does not count.
    """

    delivery_id: int
    status: str
    provider_id: str | None = None
    error: str | None = None
    failure: str | None = None  # permanent | temporary, for failed rows
    retry_at: float | None = None
    handed: bool = True


@dataclass(frozen=True)
class Unresolved:
    """What keeps a dispatch from being `sent`: rows a run must still send or someone decide."""

    queued: int = 0
    sending: int = 0
    unknown: int = 0
    failed_temporary: int = 0

    @property
    def total(self) -> int:
        return self.queued + self.sending + self.unknown + self.failed_temporary


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


_PENDING = (
    "SELECT d.id, d.message_id, d.attempts, d.batch_key, d.batch_since, d.handed_at,"
    " d.variant_id, s.id, s.email, s.name, s.status, s.token_nonce, s.sections_off,"
    " s.paused_until FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id"
)

#: a run's share of the rows when a send is split over processes: (index, count), the rows whose
#: id % count == index; None: every row
Share = tuple[int, int] | None


_WAITING = (
    "SELECT count(*), min(d.retry_at) FROM deliveries d JOIN subscribers s"
    " ON s.id = d.subscriber_id WHERE d.dispatch_id = ? AND d.retry_at IS NOT NULL"
    " AND d.status = 'queued' AND s.status = 'active'"
)


def _share(share: Share) -> tuple[str, list[int]]:
    if share is None:
        return "", []
    return " AND d.id % ? = ?", [share[1], share[0]]


def _pending(found: Iterable[tuple[Any, ...]]) -> list[Pending]:
    """The reader comes whole (their links' nonce, their sections, their pause). Built field by
    field, not through `Subscriber.from_row`: this runs once a message of a send."""
    return [
        Pending(
            row[0],
            Subscriber(sid, email, name, status, nonce or "", parse_sections_off(off), paused),
            *row[1:7],
        )
        for row in found
        for sid, email, name, status, nonce, off, paused in (row[7:],)
    ]


class Deliveries:
    def __init__(
        self, db: Database, writing: Callable[[], AbstractContextManager[None]] | None = None
    ) -> None:
        self.db = db
        # a claim or a record takes its turn among the writers (the processes of a split send,
        # the web service's workers) through a lock that wakes the next at once, not SQLite's
        # busy handler, which sleeps
        self._writing = writing or self.db.atomic

    def queue(self, dispatch_id: int) -> int:
        """Queue a delivery for each active subscriber not yet queued; return how many.

        Both references of every row are read by the statement itself (the subscriber from
        `subscribers`, the dispatch joined in: no row if it is gone), so SQLite's own check of
        them, two lookups a row and ~40 % of queueing 100,000 readers, is left out for it.
        """
        now = now_iso()
        with references_unchecked(self.db.conn):  # inside a transaction, they simply run
            cursor = self.db.conn.execute(
                "INSERT OR IGNORE INTO deliveries (dispatch_id, subscriber_id, status,"
                " created_at, updated_at) SELECT d.id, s.id, 'queued', ?, ? FROM dispatches d"
                " JOIN subscribers s ON s.status = 'active' WHERE d.id = ?",
                [now, now, dispatch_id],
            )
        return cursor.rowcount

    def sending_to_unknown(self, dispatch_id: int) -> int:
        """Rows left `sending` by a run that was killed during their hand-off: whether the
        provider took them cannot be known from here, so they are `unknown` until resolved."""
        return self.db.execute(
            "UPDATE deliveries SET status = 'unknown', last_error = 'no answer recorded: the run"
            " was stopped during the hand-off', updated_at = ? WHERE dispatch_id = ?"
            " AND status = 'sending'",
            [now_iso(), dispatch_id],
        ).rowcount

    def skip_inactive(self, dispatch_id: int) -> int:
        """Queued deliveries whose subscriber left (unsubscribed, bounced) are never sent."""
        return self.db.execute(
            "UPDATE deliveries SET status = 'skipped', last_error = 'subscriber no longer active',"
            " retry_at = NULL, updated_at = ? WHERE dispatch_id = ? AND status = 'queued'"
            " AND subscriber_id IN (SELECT id FROM subscribers WHERE status != 'active')",
            [now_iso(), dispatch_id],
        ).rowcount

    def requeue(self, dispatch_id: int, status: str, *, keep: Iterable[int] = ()) -> int:
        """Queue rows of `status` again (the operator's --retry-*), but those in `keep`; each
        keeps its Message-ID, and goes out in a new batch."""
        kept = set(keep)
        ids = [
            row[0]
            for row in self.db.execute(
                "SELECT id FROM deliveries WHERE dispatch_id = ? AND status = ?",
                [dispatch_id, status],
            ).fetchall()
            if row[0] not in kept
        ]
        now = now_iso()
        with self.db.atomic():
            self.db.conn.executemany(
                "UPDATE deliveries SET status = 'queued', failure = NULL, retry_at = NULL,"
                " batch_key = NULL, batch_since = NULL, updated_at = ? WHERE id = ? AND status = ?",
                [(now, delivery_id, status) for delivery_id in ids],
            )
        return len(ids)

    def fresh(
        self, dispatch_id: int, limit: int, *, after_id: int = 0, share: Share = None
    ) -> list[Pending]:
        """Queued rows not waiting for a retry, subscriber still active, in id order."""
        where, params = _share(share)
        return _pending(
            self.db.execute(
                _PENDING + " WHERE d.dispatch_id = ? AND d.status = 'queued'"
                " AND d.retry_at IS NULL AND d.id > ? AND s.status = 'active'"
                f"{where} ORDER BY d.id LIMIT ?",
                [dispatch_id, after_id, *params, limit],
            ).fetchall()
        )

    def due(
        self, dispatch_id: int, now: float, limit: int, *, share: Share = None
    ) -> list[Pending]:
        """Queued rows whose retry time has come, the longest waiting first."""
        where, params = _share(share)
        return _pending(
            self.db.execute(
                _PENDING + " WHERE d.dispatch_id = ? AND d.retry_at IS NOT NULL"
                " AND d.retry_at <= ? AND d.status = 'queued' AND s.status = 'active'"
                f"{where} ORDER BY d.retry_at, d.id LIMIT ?",
                [dispatch_id, now, *params, limit],
            ).fetchall()
        )

    def waiting(self, dispatch_id: int, *, share: Share = None) -> tuple[int, float | None]:
        """How many queued rows wait for a retry, and the earliest time one is due."""
        where, params = _share(share)
        count, earliest = self.db.execute(_WAITING + where, [dispatch_id, *params]).fetchone()
        return int(count), earliest

    def unknown(self, dispatch_id: int) -> list[Pending]:
        return _pending(
            self.db.execute(
                _PENDING + " WHERE d.dispatch_id = ? AND d.status = 'unknown' ORDER BY d.id",
                [dispatch_id],
            ).fetchall()
        )

    def batch(self, dispatch_id: int, batch_key: str) -> list[tuple[int, str]]:
        """(id, status) of every row handed over under `batch_key`, in hand-off order."""
        return [
            (row[0], row[1])
            for row in self.db.execute(
                "SELECT id, status FROM deliveries WHERE dispatch_id = ? AND batch_key = ?"
                " ORDER BY id",
                [dispatch_id, batch_key],
            ).fetchall()
        ]

    def claim(
        self, claims: Sequence[Claim], *, now: float, from_status: str = "queued"
    ) -> set[int]:
        """Mark rows `sending`, with their identity, in one durable commit; the ids claimed.

        A row is claimed only while in `from_status` and while its subscriber is still active,
        so an unsubscribe that landed a moment ago is respected. A repeat of an unanswered
        batch (`from_status="unknown"`) is all or nothing: the same request or none.
        """
        stamp = now_iso()
        params = [
            (
                c.batch_key,
                now,
                c.message_id,
                c.batch_key,
                c.variant_id,
                now,
                stamp,
                c.delivery_id,
                from_status,
            )
            for c in claims
        ]
        with self._writing():
            cursor = self.db.conn.executemany(
                "UPDATE deliveries SET status = 'sending', attempts = attempts + 1,"
                " batch_since = CASE WHEN batch_key IS ? THEN batch_since ELSE ? END,"
                " message_id = ?, batch_key = ?, variant_id = coalesce(variant_id, ?),"
                " handed_at = ?, retry_at = NULL, failure = NULL, updated_at = ? WHERE id = ?"
                " AND status = ? AND EXISTS (SELECT 1 FROM"
                " subscribers s WHERE s.id = deliveries.subscriber_id AND s.status = 'active')",
                params,
            )
            if cursor.rowcount == len(claims):
                return {c.delivery_id for c in claims}
            if from_status == "unknown":
                raise _Incomplete
            claimed = set()
            for c in claims:
                row = self.db.execute(
                    "SELECT status, message_id, handed_at FROM deliveries WHERE id = ?",
                    [c.delivery_id],
                ).fetchone()
                if row == ("sending", c.message_id, now):
                    claimed.add(c.delivery_id)
            return claimed

    def claim_repeat(self, claims: Sequence[Claim], *, now: float) -> bool:
        """Claim an unanswered batch again, whole (True), or leave every row of it as it is."""
        try:
            self.claim(claims, now=now, from_status="unknown")
        except _Incomplete:
            return False
        return True

    def rekey(self, delivery_ids: Sequence[int], batch_key: str, *, now: float) -> None:
        """The batch being handed over lost a member between compose and claim: its own key."""
        self.db.conn.executemany(
            "UPDATE deliveries SET batch_key = ?, batch_since = ? WHERE id = ?",
            [(batch_key, now, delivery_id) for delivery_id in delivery_ids],
        )

    def record(self, outcomes: Iterable[Outcome]) -> None:
        """Write what the sender answered, in one commit."""
        now = now_iso()
        sent: list[Outcome] = []
        others: list[Outcome] = []
        for o in outcomes:
            (sent if o.status == "sent" and o.handed and not o.error else others).append(o)
        with self._writing():
            # most answers, the same update with four values to bind instead of nine
            self.db.conn.executemany(
                "UPDATE deliveries SET status = 'sent',"
                " provider_message_id = coalesce(?, provider_message_id), last_error = NULL,"
                " failure = NULL, retry_at = NULL, sent_at = ?, updated_at = ? WHERE id = ?",
                [(o.provider_id, now, now, o.delivery_id) for o in sent],
            )
            self.db.conn.executemany(
                "UPDATE deliveries SET status = ?,"
                " provider_message_id = coalesce(?, provider_message_id), last_error = ?,"
                " failure = ?, retry_at = ?, attempts = attempts - ?,"
                " sent_at = coalesce(?, sent_at), updated_at = ? WHERE id = ?",
                [
                    (
                        o.status,
                        o.provider_id,
                        (o.error or "")[:1000] or None,
                        o.failure if o.status == "failed" else None,
                        o.retry_at if o.status == "queued" else None,
                        0 if o.handed else 1,
                        now if o.status == "sent" else None,
                        now,
                        o.delivery_id,
                    )
                    for o in others
                ],
            )

    def counts(self, dispatch_id: int) -> dict[str, int]:
        found = dict(
            self.db.execute(
                "SELECT status, count(*) FROM deliveries WHERE dispatch_id = ? GROUP BY status",
                [dispatch_id],
            ).fetchall()
        )
        return {status: found.get(status, 0) for status in STATUSES}

    def failed_by_kind(self, dispatch_id: int) -> dict[str, int]:
        """Failed rows split into final (`permanent`) and retryable (`temporary`) ones."""
        found = dict(
            self.db.execute(
                "SELECT coalesce(failure, 'permanent'), count(*) FROM deliveries"
                " WHERE dispatch_id = ? AND status = 'failed' GROUP BY 1",
                [dispatch_id],
            ).fetchall()
        )
        return {kind: found.get(kind, 0) for kind in FAILURES}

    def unresolved(self, dispatch_id: int) -> Unresolved:
        counts = self.counts(dispatch_id)
        return Unresolved(
            queued=counts["queued"],
            sending=counts["sending"],
            unknown=counts["unknown"],
            failed_temporary=self.failed_by_kind(dispatch_id)["temporary"],
        )

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
        if current and current["host"] == host:
            ours = current["pid"] == pid
            # this process's own lease that no run of it holds any more: its release failed
            # (a full disk), and the run that took it is over
            if (ours and current["holder"] not in _HELD) or (
                not ours and not _pid_alive(current["pid"])
            ):
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
        _HELD.add(holder)
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
        try:
            self.db.execute(
                "DELETE FROM delivery_leases WHERE dispatch_id = ? AND holder = ?",
                [lease.dispatch_id, lease.holder],
            )
        finally:
            _HELD.discard(lease.holder)

    def lease_of(self, dispatch_id: int) -> dict[str, Any] | None:
        return one(self.db, "SELECT * FROM delivery_leases WHERE dispatch_id = ?", [dispatch_id])


class _Incomplete(Exception):
    """Some row of an all-or-nothing claim had changed: the whole claim is rolled back."""
