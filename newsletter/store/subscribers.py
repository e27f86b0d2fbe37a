"""Queries on subscribers; every status change is also written to the event log."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from sqlite_utils import Database

from newsletter.models import Subscriber
from newsletter.store._rows import now_iso, one, rows

STATUSES = ("pending", "active", "unsubscribed", "bounced", "complained")


class Subscribers:
    def __init__(self, db: Database) -> None:
        self.db = db

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
    ) -> int:
        """Insert a new subscriber (the caller has checked the address is not known)."""
        now = now_iso()
        cursor = self.db.execute(
            "INSERT INTO subscribers (email, name, status, created_at, updated_at, confirmed_at,"
            " consent_text, consent_ip, consent_form, signup_source)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
            ],
        )
        subscriber_id = int(cursor.lastrowid or 0)
        self._log(subscriber_id, f"subscriber.{status}", actor, consent=consent_text, ip=consent_ip)
        return subscriber_id

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

    def _log(self, subscriber_id: int, kind: str, actor: str, **detail: Any) -> None:
        detail = {k: v for k, v in detail.items() if v is not None}
        self.db.execute(
            "INSERT INTO events (at, kind, subject_type, subject_id, actor, detail)"
            " VALUES (?, ?, 'subscriber', ?, ?, ?)",
            [now_iso(), kind, subscriber_id, actor, json.dumps(detail) if detail else None],
        )

    def list(self, *, status: str | None = None) -> list[dict[str, Any]]:
        if status:
            return list(
                rows(self.db, "SELECT * FROM subscribers WHERE status = ? ORDER BY id", [status])
            )
        return list(rows(self.db, "SELECT * FROM subscribers ORDER BY id"))

    def counts(self) -> dict[str, int]:
        found = dict(
            self.db.execute("SELECT status, count(*) FROM subscribers GROUP BY status").fetchall()
        )
        return {status: found.get(status, 0) for status in STATUSES}

    def iter_active(self, batch: int = 1000) -> Iterator[Subscriber]:
        """Page through active subscribers by id, never holding them all in memory."""
        after = 0
        while True:
            page = list(
                rows(
                    self.db,
                    "SELECT id, email, name, status FROM subscribers"
                    " WHERE status = 'active' AND id > ? ORDER BY id LIMIT ?",
                    [after, batch],
                )
            )
            if not page:
                return
            for row in page:
                yield Subscriber.from_row(row)
            after = page[-1]["id"]
