"""Receipts of signed webhook deliveries, kept while their signature is valid, so a captured
request cannot be played again (the SES webhook keys them by SNS MessageId).

Kept in the `meta` table for now: issue 11 brings a `webhook_receipts` table with this same
`first_time` call, and its version replaces this one when both are merged.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlite_utils import Database

_PREFIX = "receipt:"


class Receipts:
    def __init__(self, db: Database) -> None:
        self.db = db

    def first_time(self, key: str, expires_at: float, *, now: float | None = None) -> bool:
        """Record `key` until `expires_at`; False if it was recorded already (a replay).

        Call it in the transaction that acts on the request, so a request that fails leaves
        no receipt and the provider's retry is still taken. Expired receipts are dropped.
        """
        now = time.time() if now is None else now
        self.db.execute(
            "DELETE FROM meta WHERE key LIKE ? AND CAST(value AS REAL) < ?", [_PREFIX + "%", now]
        )
        cursor = self.db.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)",
            [_PREFIX + key, repr(max(expires_at, now))],
        )
        return cursor.rowcount == 1
