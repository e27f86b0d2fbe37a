"""Queries on machine drafts of signals' editorial reads, and on the ranker's fitted models."""

from __future__ import annotations

import builtins
import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from newsletter.store._rows import now_iso, one, rows

if TYPE_CHECKING:
    from sqlite_utils import Database

DECIDED = ("accepted", "rejected", "replaced")
_SCORED = """
    FROM signals s LEFT JOIN signal_drafts d ON d.id = s.draft_id
    WHERE s.signal_score IS NOT NULL
      AND (d.id IS NULL OR d.decided_by IS NOT 'auto'
           OR json_extract(d.fields, '$.signal_score') IS NOT s.signal_score)
"""


class Drafts:
    def __init__(self, db: Database) -> None:
        self.db = db

    def add(
        self,
        signal_id: int,
        fields: dict[str, Any],
        *,
        model: str,
        prompt_version: str,
        prompt_hash: str,
        response_format: str,
    ) -> int:
        """Store a new pending draft; a pending one it replaces is kept, marked 'replaced'."""
        self.db.execute(
            "UPDATE signal_drafts SET status = 'replaced', decided_at = ?"
            " WHERE signal_id = ? AND status = 'pending'",
            [now_iso(), signal_id],
        )
        cursor = self.db.execute(
            "INSERT INTO signal_drafts (signal_id, fields, model, prompt_version, prompt_hash,"
            " response_format, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                signal_id,
                json.dumps(fields, ensure_ascii=False),
                model,
                prompt_version,
                prompt_hash,
                response_format,
                now_iso(),
            ],
        )
        return int(cursor.lastrowid or 0)

    def get(self, draft_id: int) -> dict[str, Any] | None:
        return _decoded(one(self.db, "SELECT * FROM signal_drafts WHERE id = ?", [draft_id]))

    def pending(self, signal_id: int) -> dict[str, Any] | None:
        return _decoded(
            one(
                self.db,
                "SELECT * FROM signal_drafts WHERE signal_id = ? AND status = 'pending'",
                [signal_id],
            )
        )

    def latest(self, signal_id: int) -> dict[str, Any] | None:
        """The signal's newest draft whatever became of it (for `signals show`)."""
        return _decoded(
            one(
                self.db,
                "SELECT * FROM signal_drafts WHERE signal_id = ? ORDER BY id DESC LIMIT 1",
                [signal_id],
            )
        )

    def pending_for(self, signal_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
        wanted = list(dict.fromkeys(signal_ids))
        found: dict[int, dict[str, Any]] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ", ".join("?" for _ in chunk)
            for row in rows(
                self.db,
                f"SELECT * FROM signal_drafts WHERE status = 'pending' AND signal_id IN ({marks})",  # noqa: S608
                chunk,
            ):
                found[row["signal_id"]] = _decoded(row)  # type: ignore[assignment]
        return found

    def drafted_ids(self) -> set[int]:
        """Signals with a draft waiting or rejected: `signals draft` leaves them alone."""
        return {
            r[0]
            for r in self.db.execute(
                "SELECT DISTINCT signal_id FROM signal_drafts"
                " WHERE status IN ('pending', 'rejected')"
            )
        }

    def pending_ids(self) -> builtins.list[int]:
        return [
            r[0]
            for r in self.db.execute(
                "SELECT signal_id FROM signal_drafts WHERE status = 'pending' ORDER BY signal_id"
            )
        ]

    def decide(self, draft_id: int, status: str, by: str) -> None:
        if status not in DECIDED:
            raise ValueError(f"unknown draft status {status!r}")
        self.db.execute(
            "UPDATE signal_drafts SET status = ?, decided_at = ?, decided_by = ?"
            " WHERE id = ? AND status = 'pending'",
            [status, now_iso(), by, draft_id],
        )

    def link(self, signal_id: int, draft_id: int) -> None:
        """The signal's read now holds this (accepted) draft's fields."""
        self.db.execute("UPDATE signals SET draft_id = ? WHERE id = ?", [draft_id, signal_id])

    def training_rows(self) -> builtins.list[dict[str, Any]]:
        """Signals the editor has scored, for the ranker: a score that only a machine gave
        (an auto-accepted draft nobody reviewed) is not the editor's and is left out."""
        sql = f"SELECT s.id, s.title, s.summary_text, s.signal_score {_SCORED} ORDER BY s.id"
        return list(rows(self.db, sql))

    def training_count(self) -> int:
        return int(self.db.execute(f"SELECT count(*) {_SCORED}").fetchone()[0])


class RankerModels:
    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, fmt: str, model: str, *, scored: int, spearman: float | None) -> int:
        cursor = self.db.execute(
            "INSERT INTO ranker_models (format, created_at, scored, spearman, model)"
            " VALUES (?, ?, ?, ?, ?)",
            [fmt, now_iso(), scored, spearman, model],
        )
        return int(cursor.lastrowid or 0)

    def latest(self) -> dict[str, Any] | None:
        return one(self.db, "SELECT * FROM ranker_models ORDER BY id DESC LIMIT 1")

    def latest_info(self) -> dict[str, Any] | None:
        """The newest model's version and figures, without loading its weights."""
        return one(
            self.db,
            "SELECT id, format, created_at, scored, spearman FROM ranker_models"
            " ORDER BY id DESC LIMIT 1",
        )

    def prune(self, keep: int) -> None:
        """Keep the newest `keep` versions (older ones only take room)."""
        self.db.execute(
            "DELETE FROM ranker_models WHERE id NOT IN"
            " (SELECT id FROM ranker_models ORDER BY id DESC LIMIT ?)",
            [keep],
        )


def _decoded(row: dict[str, Any] | None) -> dict[str, Any] | None:
    if row is not None:
        row = {**row, "fields": json.loads(row["fields"])}
    return row
