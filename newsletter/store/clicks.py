"""Queries on click counting: the links each dispatch carries, hits waiting to be classified,
raw click rows and the per-link totals they are folded into."""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from newsletter.errors import StoreError
from newsletter.models import TrackedLink
from newsletter.store._rows import now_iso, one, rows

if TYPE_CHECKING:
    from sqlite_utils import Database

#: one queued hit: link key, time, visitor hash, browser-like, reason if automated, reader
Hit = tuple[str, float, str, bool, str | None, int | None]
#: one classified hit: queue id, link key, hour, human, reason, reader
Settled = tuple[int, str, int, bool, str | None, int | None]


class Clicks:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- links ------------------------------------------------------------------------------

    def add_links(self, links: Iterable[TrackedLink], *, frozen: bool) -> None:
        """Store a rendering's links; `frozen`: the dispatch's own (counted), after which the
        links only a test message or a preview carried stop working."""
        now = now_iso()
        dispatches = set()
        for link in links:
            dispatches.add(link.dispatch_id)
            self.db.execute(
                "INSERT INTO tracked_links (key, dispatch_id, signal_id, kind, url, frozen,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT(key) DO UPDATE SET frozen = max(frozen, excluded.frozen)",
                [link.key, link.dispatch_id, link.signal_id, link.kind, link.url, int(frozen), now],
            )
            stored = self.link(link.key)
            if stored is None or (stored["dispatch_id"], stored["url"]) != (
                link.dispatch_id,
                link.url,
            ):
                raise StoreError(f"tracked link {link.key} already names another link")
        if frozen:
            for dispatch_id in dispatches:
                self.db.execute(
                    "DELETE FROM tracked_links WHERE dispatch_id = ? AND frozen = 0", [dispatch_id]
                )

    def link(self, key: str) -> dict[str, Any] | None:
        return one(self.db, "SELECT * FROM tracked_links WHERE key = ?", [key])

    def links(self, dispatch_id: int) -> builtins.list[dict[str, Any]]:
        return list(
            rows(
                self.db,
                "SELECT * FROM tracked_links WHERE dispatch_id = ? ORDER BY rowid",
                [dispatch_id],
            )
        )

    def dispatch_link_count(self, dispatch_ids: Iterable[int]) -> dict[int, int]:
        """How many distinct links (the pixel aside) each dispatch carries."""
        ids = list(dispatch_ids)
        if not ids:
            return {}
        marks = ", ".join("?" * len(ids))
        found = self.db.execute(
            f"SELECT dispatch_id, count(*) FROM tracked_links WHERE dispatch_id IN ({marks})"  # noqa: S608
            " AND kind != 'open' GROUP BY dispatch_id",
            ids,
        )
        return dict(found.fetchall())

    # -- hits waiting for classification ----------------------------------------------------

    def enqueue(self, hits: Sequence[Hit]) -> None:
        """Hits from the web service, in one statement; a reader erased meanwhile is left out."""
        self.db.conn.executemany(
            "INSERT INTO click_queue (link_key, at, visitor, browser, reason, subscriber_id)"
            " SELECT ?, ?, ?, ?, ?, (SELECT id FROM subscribers WHERE id = ?)"
            " WHERE EXISTS (SELECT 1 FROM tracked_links WHERE key = ?)",
            [
                (key, at, visitor, int(browser), reason, reader, key)
                for key, at, visitor, browser, reason, reader in hits
            ],
        )

    def queued(
        self, *, before: float | None = None, upto: float | None = None
    ) -> builtins.list[dict[str, Any]]:
        """Queued hits of every visitor with a hit at or before `before` (None: every hit),
        up to `upto`, with each link's dispatch and kind, sorted by visitor and time."""
        where, params = "", []
        if before is not None:
            where = "WHERE q.visitor IN (SELECT visitor FROM click_queue WHERE at <= ?)"
            params.append(before)
            if upto is not None:
                where += " AND q.at <= ?"
                params.append(upto)
        return list(
            rows(
                self.db,
                "SELECT q.*, l.dispatch_id, l.kind FROM click_queue q"  # noqa: S608 - fixed text
                " JOIN tracked_links l ON l.key = q.link_key "
                + where
                + " ORDER BY q.visitor, l.dispatch_id, q.at, q.id",
                params,
            )
        )

    def pending(self) -> bool:
        """Whether any hit waits to be classified."""
        return self.db.execute("SELECT 1 FROM click_queue LIMIT 1").fetchone() is not None

    def settle(self, bursts: Iterable[int], done: Sequence[Settled]) -> None:
        """Mark hits found in a burst; move classified hits to `clicks` (their visitor hash
        goes with the queue row)."""
        self.db.conn.executemany(
            "UPDATE click_queue SET burst = 1 WHERE id = ?", [(i,) for i in bursts]
        )
        self.db.conn.executemany(
            "INSERT INTO clicks (link_key, hour, human, reason, subscriber_id)"
            " SELECT ?, ?, ?, ?, (SELECT id FROM subscribers WHERE id = ?)",
            [(k, hour, int(human), why, reader) for _, k, hour, human, why, reader in done],
        )
        self.db.conn.executemany("DELETE FROM click_queue WHERE id = ?", [(d[0],) for d in done])

    # -- retention and erasure --------------------------------------------------------------

    def _fold(self, where: str, params: Sequence[Any]) -> int:
        """Add the matching raw rows to the per-link totals, then delete them."""
        self.db.execute(
            "INSERT INTO click_totals (link_key, human, automated)"  # noqa: S608 - fixed text
            " SELECT link_key, sum(human), sum(1 - human) FROM clicks WHERE "
            + where
            + " GROUP BY link_key"
            " ON CONFLICT(link_key) DO UPDATE SET human = human + excluded.human,"
            " automated = automated + excluded.automated",
            params,
        )
        return self.db.execute("DELETE FROM clicks WHERE " + where, params).rowcount  # noqa: S608

    def fold_before(self, hour: int) -> int:
        """Raw rows older than `hour` (unix seconds) become counts; returns how many."""
        return self._fold("hour < ?", [hour])

    def forget_reader(self, subscriber_id: int) -> int:
        """A reader is erased: their per-reader rows become anonymous counts and are deleted."""
        self.db.execute("DELETE FROM click_queue WHERE subscriber_id = ?", [subscriber_id])
        return self._fold("subscriber_id = ?", [subscriber_id])

    # -- figures ----------------------------------------------------------------------------

    def per_link(self, dispatch_id: int) -> builtins.list[dict[str, Any]]:
        """Each frozen link of the dispatch with its human and automated clicks (raw rows and
        folded totals), hits still queued, and distinct readers (per-reader rows only)."""
        return list(
            rows(
                self.db,
                """
                SELECT l.key, l.signal_id, l.kind, l.url,
                    coalesce(c.human, 0) + coalesce(t.human, 0) AS human,
                    coalesce(c.automated, 0) + coalesce(t.automated, 0) AS automated,
                    coalesce(q.queued, 0) AS queued,
                    coalesce(c.readers, 0) AS readers
                FROM tracked_links l
                LEFT JOIN (SELECT link_key, sum(human) AS human, sum(1 - human) AS automated,
                        count(DISTINCT CASE WHEN human = 1 THEN subscriber_id END) AS readers
                    FROM clicks GROUP BY link_key) c ON c.link_key = l.key
                LEFT JOIN click_totals t ON t.link_key = l.key
                LEFT JOIN (SELECT link_key, count(*) AS queued FROM click_queue
                    GROUP BY link_key) q ON q.link_key = l.key
                WHERE l.dispatch_id = ? AND l.frozen = 1
                ORDER BY l.rowid
                """,
                [dispatch_id],
            )
        )

    def readers_per_signal(self, dispatch_id: int) -> dict[int | None, int]:
        """Distinct readers with a human click on each signal (per-reader rows only)."""
        found = self.db.execute(
            "SELECT l.signal_id, count(DISTINCT c.subscriber_id) FROM clicks c"
            " JOIN tracked_links l ON l.key = c.link_key"
            " WHERE l.dispatch_id = ? AND c.human = 1 AND c.subscriber_id IS NOT NULL"
            " GROUP BY l.signal_id",
            [dispatch_id],
        )
        return dict(found.fetchall())

    def readers_answers(self, dispatch_id: int, start: str, end: str) -> dict[str, int]:
        """How many of the dispatch's readers unsubscribed, complained or bounced in
        [start, end) (ISO times): the week after it went out."""
        kinds = ("subscriber.unsubscribed", "subscriber.complained", "subscriber.bounced")
        found = self.db.execute(
            "SELECT e.kind, count(DISTINCT e.subject_id) FROM events e"
            " WHERE e.subject_type = 'subscriber' AND e.kind IN (?, ?, ?)"
            " AND e.at >= ? AND e.at < ? AND e.subject_id IN"
            " (SELECT subscriber_id FROM deliveries WHERE dispatch_id = ? AND status = 'sent')"
            " GROUP BY e.kind",
            [*kinds, start, end, dispatch_id],
        )
        counts = dict(found.fetchall())
        return {kind.removeprefix("subscriber."): int(counts.get(kind, 0)) for kind in kinds}

    def first_delivery(self, dispatch_id: int) -> str | None:
        """When the first message of the dispatch was handed over (ISO time)."""
        row = self.db.execute(
            "SELECT min(coalesce(sent_at, updated_at)) FROM deliveries"
            " WHERE dispatch_id = ? AND status != 'queued'",
            [dispatch_id],
        ).fetchone()
        return row[0] if row else None
