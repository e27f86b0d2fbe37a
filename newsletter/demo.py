"""The demo: the whole weekly slice on sample data shipped inside the package, with no network."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from pathlib import Path

from newsletter.delivery.deliver import DeliveryReport, send_dispatch
from newsletter.delivery.senders import FileSender
from newsletter.dispatch.build import approve, build_dispatch, load_dispatch
from newsletter.models import Dispatch
from newsletter.preview import write_preview
from newsletter.readers.subscriptions import add_subscriber
from newsletter.settings import Settings
from newsletter.signals.annotations import import_annotations
from newsletter.signals.collect import CollectReport, collect
from newsletter.signals.sources_file import read_sources_file
from newsletter.site.build import publish_after_send
from newsletter.site.publish import set_published
from newsletter.store import Store
from newsletter.weeks import Week

#: the ISO week the sample signals were published in
SAMPLE_WEEK = Week(2026, 24)
#: the seed-002 paper, from an earlier week: the editor publishes its page between dispatches
SAMPLE_PUBLISHED = "2605.22731"


def sample_dir() -> Path:
    return Path(str(resources.files("newsletter") / "sample"))


@dataclass
class DemoResult:
    collected: CollectReport
    dispatch: Dispatch
    delivery: DeliveryReport
    preview: Path
    archive: Path | None
    outbox: Path
    db: Path
    public_signals: int = 0


def load_sample(store: Store, *, now: datetime | None = None) -> CollectReport:
    """The bundled sample sources collected and the sample annotations imported."""
    sample = sample_dir()
    for spec in read_sources_file(sample / "sources.toml"):
        store.sources.add(spec.name, spec.url, category=spec.category, label=spec.label)
    collected = collect(store, now=now)
    import_annotations(store, sorted((sample / "annotations").iterdir()))
    return collected


def run_demo(settings: Settings, preview_path: Path = Path("preview.html")) -> DemoResult:
    sample = sample_dir()
    store = Store.open(settings.db)
    try:
        collected = load_sample(store)
        with open(sample / "subscribers.csv", newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                add_subscriber(store, row["email"], name=row.get("name") or None, confirmed=True)
        published = store.signals.find(arxiv_id=SAMPLE_PUBLISHED)
        if published is not None:
            set_published(store, settings, [published["id"]], public=True)
        dispatch = load_dispatch(store, settings, SAMPLE_WEEK)
        if dispatch is None or dispatch.status == "draft":
            build_dispatch(store, settings, SAMPLE_WEEK)
            dispatch = approve(store, settings, SAMPLE_WEEK)
        preview = write_preview(store, settings, SAMPLE_WEEK, preview_path)
        delivery = send_dispatch(store, settings, FileSender(settings.outbox), SAMPLE_WEEK)
        archive = publish_after_send(store, settings, SAMPLE_WEEK)
        dispatch = load_dispatch(store, settings, SAMPLE_WEEK)
        assert dispatch is not None
        public = store.stream.count()
    finally:
        store.close()
    outbox = settings.outbox / str(SAMPLE_WEEK)
    return DemoResult(collected, dispatch, delivery, preview, archive, outbox, settings.db, public)
