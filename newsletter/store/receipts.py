"""Receipts of signed webhook deliveries, kept for as long as their signature stays valid, so a
captured request cannot be played again (Mailgun tokens, Svix message ids, SendGrid's
timestamp and body; SES/SNS message ids the same way)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlite_utils import Database


class Receipts:
    def __init__(self, db: Database) -> None:
        self.db = db

    def first_time(self, key: str, expires_at: float, *, now: float | None = None) -> bool:
        """Record `key` until `expires_at`; False if it was recorded already (a replay).

        Call it in the transaction that acts on the request: a request that fails is not
        recorded, so the provider's retry is still accepted. Expired receipts are dropped.
        """
        now = time.time() if now is None else now
        self.db.execute("DELETE FROM webhook_receipts WHERE expires_at < ?", [now])
        cursor = self.db.execute(
            "INSERT OR IGNORE INTO webhook_receipts (key, expires_at) VALUES (?, ?)",
            [key, max(expires_at, now)],
        )
        return cursor.rowcount == 1
