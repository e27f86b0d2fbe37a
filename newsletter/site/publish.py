"""The editor's publish / unpublish: which signals have a public page between dispatches.

A signal goes public on its own once a dispatch holding it goes out; `publish` makes it public
before that, `unpublish` takes it down whatever dispatch carried it (the page and its feed
entries answer 404 from then on). Only annotated signals can be published.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from newsletter.dispatch.card import page_url
from newsletter.errors import NewsletterError
from newsletter.models import Signal
from newsletter.settings import Settings
from newsletter.store import Store


@dataclass(frozen=True)
class Publication:
    signal: Signal
    public: bool
    url: str | None  # the page, when public


def _signals(store: Store, signal_ids: Iterable[int]) -> list[Signal]:
    ids = list(dict.fromkeys(signal_ids))
    found = {i: store.signals.get(i) for i in ids}
    missing = [str(i) for i, s in found.items() if s is None]
    if missing:
        raise NewsletterError(
            f"no signal with id {', '.join(missing)} (see `newsletter signals list`)"
        )
    return [s for s in found.values() if s is not None]


def set_published(
    store: Store, settings: Settings, signal_ids: Iterable[int], *, public: bool
) -> list[Publication]:
    """Publish or unpublish, all or nothing: an unknown id, or publishing a signal without the
    editor's read (no signal score and no "why"), changes nothing."""
    signals = _signals(store, signal_ids)
    if public:
        bare = [f"#{s.id}" for s in signals if not s.is_annotated]
        if bare:
            raise NewsletterError(
                f"{', '.join(bare)}: not annotated (no signal score and no why_now,"
                " why_important or what_changes), so it cannot have a public page;"
                " annotate it first (`newsletter signals edit ID`)"
            )
    with store.transaction():
        state = "published" if public else "unpublished"
        store.stream.set_publication([s.id for s in signals], state)
        for signal in signals:
            store.events.log(f"signal.{state}", "signal", signal.id)
    result = []
    for signal in signals:
        fresh = store.signals.get(signal.id)
        assert fresh is not None
        shown = store.stream.is_public(signal.id)
        result.append(Publication(fresh, shown, page_url(fresh, settings) if shown else None))
    return result
