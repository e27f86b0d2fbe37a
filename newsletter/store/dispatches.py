"""Queries on dispatches and the signals each one holds."""

from __future__ import annotations

import builtins
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from newsletter.store._rows import now_iso, one, rows

if TYPE_CHECKING:
    from sqlite_utils import Database

EDITABLE = ("subject", "preheader", "note", "subject_set", "preheader_set", "status")
#: sending has begun: the rendered copy is stored and the dispatch never changes again
FROZEN = ("sending", "partly sent", "sent")


class Dispatches:
    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, week: str) -> dict[str, Any] | None:
        return one(self.db, "SELECT * FROM dispatches WHERE week = ?", [week])

    def get_by_id(self, dispatch_id: int) -> dict[str, Any] | None:
        return one(self.db, "SELECT * FROM dispatches WHERE id = ?", [dispatch_id])

    def create(self, week: str) -> dict[str, Any]:
        """A new draft for the week, with the next running issue number."""
        now = now_iso()
        self.db.execute(
            "INSERT INTO dispatches (week, issue_number, status, created_at, updated_at)"
            " VALUES (?, (SELECT COALESCE(MAX(issue_number), 0) + 1 FROM dispatches),"
            " 'draft', ?, ?)",
            [week, now, now],
        )
        row = self.get(week)
        assert row is not None
        return row

    def hold_issue_number(self, dispatch_id: int, has_signals: bool) -> None:
        """An empty draft gives its issue number back (it holds -id, shown as none), and a draft
        that gains signals takes the next one, so quiet weeks leave no gap in the numbering.
        """
        if has_signals:
            self.db.execute(
                "UPDATE dispatches SET issue_number ="
                " (SELECT COALESCE(MAX(issue_number), 0) + 1 FROM dispatches)"
                " WHERE id = ? AND issue_number <= 0",
                [dispatch_id],
            )
        else:
            self.db.execute(
                "UPDATE dispatches SET issue_number = -id WHERE id = ? AND status = 'draft'",
                [dispatch_id],
            )

    def update(self, dispatch_id: int, **values: Any) -> None:
        unknown = set(values) - set(EDITABLE)
        if unknown:
            raise ValueError(f"not editable: {', '.join(sorted(unknown))}")
        assignments = ", ".join(f"{k} = ?" for k in values)
        self.db.execute(
            f"UPDATE dispatches SET {assignments}, updated_at = ? WHERE id = ?",  # noqa: S608
            [*values.values(), now_iso(), dispatch_id],
        )
        if values.get("status") == "approved":
            self.db.execute(
                "UPDATE dispatches SET approved_at = ? WHERE id = ?", [now_iso(), dispatch_id]
            )

    def list(self, *, status: str | None = None) -> list[dict[str, Any]]:
        if status:
            return list(
                rows(
                    self.db,
                    "SELECT * FROM dispatches WHERE status = ? ORDER BY week DESC",
                    [status],
                )
            )
        return list(rows(self.db, "SELECT * FROM dispatches ORDER BY week DESC"))

    def recent_sections(self, dispatches: int) -> builtins.list[str]:
        """The section (category) of every signal in the latest `dispatches` dispatches, as
        stored (the caller names the empty one), each once, most used first."""
        return [
            row[0]
            for row in self.db.execute(
                "SELECT ds.section, count(*) AS used FROM dispatch_signals ds"
                " WHERE ds.included = 1 AND ds.dispatch_id IN"
                " (SELECT id FROM dispatches ORDER BY week DESC LIMIT ?)"
                " GROUP BY ds.section ORDER BY used DESC, ds.section",
                [dispatches],
            )
        ]

    def latest_sent_week(self) -> str | None:
        """The week of the newest dispatch sending began for (the archive has its page)."""
        marks = ",".join("?" * len(FROZEN))
        row = self.db.execute(
            f"SELECT week FROM dispatches WHERE status IN ({marks}) AND html IS NOT NULL"  # noqa: S608
            " ORDER BY week DESC LIMIT 1",
            list(FROZEN),
        ).fetchone()
        return row[0] if row else None

    def editor_choices(self, dispatch_id: int) -> tuple[set[int], set[int]]:
        """The signals the editor pinned and dropped; a rebuild keeps both."""
        pinned, dropped = set(), set()
        for row in rows(
            self.db,
            "SELECT signal_id, pinned, dropped FROM dispatch_signals WHERE dispatch_id = ?",
            [dispatch_id],
        ):
            if row["pinned"]:
                pinned.add(row["signal_id"])
            if row["dropped"]:
                dropped.add(row["signal_id"])
        return pinned, dropped

    def set_choice(self, dispatch_id: int, signal_id: int, *, pinned: bool, dropped: bool) -> None:
        self.db.execute(
            "INSERT INTO dispatch_signals (dispatch_id, signal_id, included, pinned, dropped)"
            " VALUES (?, ?, 0, ?, ?)"
            " ON CONFLICT(dispatch_id, signal_id) DO UPDATE SET"
            " pinned = excluded.pinned, dropped = excluded.dropped",
            [dispatch_id, signal_id, int(pinned), int(dropped)],
        )

    def set_selection(self, dispatch_id: int, chosen: Iterable[tuple[int, str]]) -> None:
        """Replace which signals are included (in order, with their section); keep pins/drops."""
        self.db.execute(
            "UPDATE dispatch_signals SET included = 0, position = NULL, section = NULL"
            " WHERE dispatch_id = ?",
            [dispatch_id],
        )
        for position, (signal_id, section) in enumerate(chosen):
            self.db.execute(
                "INSERT INTO dispatch_signals (dispatch_id, signal_id, position, section, included)"
                " VALUES (?, ?, ?, ?, 1)"
                " ON CONFLICT(dispatch_id, signal_id) DO UPDATE SET"
                " position = excluded.position, section = excluded.section, included = 1",
                [dispatch_id, signal_id, position, section],
            )
        self.db.execute(
            "UPDATE dispatches SET updated_at = ? WHERE id = ?", [now_iso(), dispatch_id]
        )

    def selection(self, dispatch_id: int) -> builtins.list[tuple[int, str]]:
        return [
            (r["signal_id"], r["section"])
            for r in rows(
                self.db,
                "SELECT signal_id, section FROM dispatch_signals"
                " WHERE dispatch_id = ? AND included = 1 ORDER BY position",
                [dispatch_id],
            )
        ]

    def freeze(self, dispatch_id: int, html: str, text: str, nonce: str) -> None:
        """Keep the rendered copy the subscribers get; from now on the dispatch never changes."""
        self.db.execute(
            "UPDATE dispatches SET html = ?, text = ?, slot_nonce = ?, status = 'sending',"
            " updated_at = ? WHERE id = ? AND html IS NULL",
            [html, text, nonce, now_iso(), dispatch_id],
        )

    def settle(self, dispatch_id: int, status: str) -> None:
        """At the end of a run: `sent` when no reader is left unresolved, else `partly sent`."""
        if status not in ("sent", "partly sent"):
            raise ValueError(status)
        now = now_iso()
        self.db.execute(
            "UPDATE dispatches SET status = ?, sent_at = coalesce(sent_at, ?), updated_at = ?"
            " WHERE id = ?",
            [status, now, now, dispatch_id],
        )

    def mark_sent(self, dispatch_id: int) -> None:
        self.settle(dispatch_id, "sent")
