"""The event log: who changed what and when (proof of consent, sends, imports)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from newsletter.store._rows import now_iso, rows

if TYPE_CHECKING:
    from sqlite_utils import Database


class Events:
    def __init__(self, db: Database) -> None:
        self.db = db

    def log(
        self,
        kind: str,
        subject_type: str | None = None,
        subject_id: int | None = None,
        *,
        actor: str = "cli",
        **detail: Any,
    ) -> None:
        self.db.execute(
            "INSERT INTO events (at, kind, subject_type, subject_id, actor, detail)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [
                now_iso(),
                kind,
                subject_type,
                subject_id,
                actor,
                json.dumps(detail) if detail else None,
            ],
        )

    def for_subject(self, subject_type: str, subject_id: int) -> list[dict[str, Any]]:
        return list(
            rows(
                self.db,
                "SELECT * FROM events WHERE subject_type = ? AND subject_id = ? ORDER BY id",
                [subject_type, subject_id],
            )
        )

    def recent(self, limit: int = 50) -> list[dict[str, Any]]:
        return list(rows(self.db, "SELECT * FROM events ORDER BY id DESC LIMIT ?", [limit]))
