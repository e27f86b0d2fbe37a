"""Collection: every enabled source fetch, parse, upsert; a broken source never stops the rest."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from newsletter.errors import FeedError
from newsletter.fetch import fetch
from newsletter.parse import parse_feed
from newsletter.store import Store

log = logging.getLogger(__name__)


@dataclass
class SourceResult:
    name: str
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    error: str | None = None
    warnings: list[str] = field(default_factory=list)


@dataclass
class CollectReport:
    sources: list[SourceResult] = field(default_factory=list)

    @property
    def failed(self) -> list[SourceResult]:
        return [s for s in self.sources if s.error]

    @property
    def new(self) -> int:
        return sum(s.new for s in self.sources)

    @property
    def updated(self) -> int:
        return sum(s.updated for s in self.sources)


def collect_source(store: Store, source: dict[str, Any], now: datetime) -> SourceResult:
    result = SourceResult(source["name"])
    try:
        fetched = fetch(source["url"])
        parsed = parse_feed(
            fetched.body,
            base_url=fetched.url,
            source_label=source.get("label"),
            category=source.get("category"),
            name=source["name"],
        )
    except FeedError as exc:
        result.error = str(exc)
        store.sources.record_fetch(source["id"], status="error", error=result.error)
        return result
    result.warnings = parsed.warnings
    with store.transaction():
        for item in parsed.items:
            outcome = store.signals.upsert_item(item, source["id"], now)
            setattr(result, outcome, getattr(result, outcome) + 1)
        store.sources.record_fetch(
            source["id"],
            status="ok" if not parsed.warnings else "ok-with-warnings",
            item_count=len(parsed.items),
            etag=fetched.etag,
            last_modified=fetched.last_modified,
        )
    return result


def collect(store: Store, *, now: datetime | None = None) -> CollectReport:
    now = now or datetime.now(UTC)
    report = CollectReport()
    for source in store.sources.list(enabled_only=True):
        result = collect_source(store, source, now)
        if result.error:
            log.warning("source %s failed: %s", result.name, result.error)
        else:
            log.info(
                "source %s: %d new, %d updated, %d unchanged",
                result.name,
                result.new,
                result.updated,
                result.unchanged,
            )
        for warning in result.warnings:
            log.warning("%s", warning)
        report.sources.append(result)
    return report
