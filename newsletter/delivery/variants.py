"""The variants one send composes from: one rendering per distinct set of sections its readers
get, each compiled once and frozen beside the dispatch the first time a reader needs it.

The full variant is the dispatch's own frozen copy (the archive's too), frozen when sending
begins as it always was; any other is rendered from the frozen selection when first needed, so
readers who change their sections while a dispatch is part-sent still get theirs. A delivery
keeps the variant of its first claim (`deliveries.variant_id`): a retry, a repeat or a lookup
composes the same message again whatever the reader chose since.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from newsletter.delivery.compose import Composer
from newsletter.dispatch.render import Rendered, frozen_rendering, stored_rendering
from newsletter.dispatch.variants import (
    Key,
    full_key,
    reader_key,
    variant_dispatch,
    week_sections,
)
from newsletter.engagement.tracking import keep_links, render_tracked
from newsletter.models import Dispatch, Subscriber
from newsletter.settings import Settings
from newsletter.store import Store
from newsletter.store.variants import StoredVariant


def variant_rendering(variant: StoredVariant) -> Rendered:
    return stored_rendering(
        variant.html,
        variant.text,
        variant.slot_nonce,
        subject=variant.subject,
        preheader=variant.preheader,
        dispatch_id=variant.dispatch_id,
    )


def lead_of(dispatch: Dispatch) -> int | None:
    first = dispatch.sections[0] if dispatch.sections else None
    return first.signals[0].id if first is not None and first.lead and first.signals else None


@dataclass
class VariantSet:
    """A dispatch's variants for one run: composers by variant id, keys by reader choice.

    `freeze=False` (a dry run, the preview, the pre-flight checks) renders what is not frozen
    yet without keeping it: nothing about the dispatch changes.
    """

    store: Store
    settings: Settings
    dispatch: Dispatch
    freeze: bool = True
    sections: Key = ()
    full: Key = ()
    _by_key: dict[Key, tuple[int, Composer]] = field(default_factory=dict)
    _by_id: dict[int, Composer] = field(default_factory=dict)
    _keys: dict[frozenset[str], Key] = field(default_factory=dict)
    #: MJML compiles this run made (the benchmark and tests count them)
    rendered: int = 0

    def __post_init__(self) -> None:
        self.sections = week_sections(self.dispatch, self.settings.sections)
        self.full = full_key(self.sections)
        self.secret = self.store.secret_key(self.settings.secret_key)
        row = self.store.dispatches.get_by_id(self.dispatch.id) or {}
        self._subject_set = bool(row.get("subject_set"))
        self._preheader_set = bool(row.get("preheader_set"))

    def key_of(self, subscriber: Subscriber) -> Key:
        """The reader's key this week; () when their choices leave nothing."""
        return self.key_for(subscriber.sections_off)

    def key_for(self, sections_off: frozenset[str]) -> Key:
        key = self._keys.get(sections_off)
        if key is None:
            key = self._keys[sections_off] = reader_key(self.sections, sections_off)
        return key

    def for_key(self, key: Key) -> tuple[int, Composer]:
        """(variant id, composer) of the variant for `key`, rendered and frozen if need be
        (id 0: rendered for this run only, `freeze=False`)."""
        found = self._by_key.get(key)
        if found is None:
            found = self._by_key[key] = self._load(key)
            if found[0]:
                self._by_id[found[0]] = found[1]
        return found

    def by_id(self, variant_id: int) -> Composer:
        """The composer of a variant a delivery was claimed with."""
        composer = self._by_id.get(variant_id)
        if composer is None:
            stored = next(v for v in self.store.variants.of(self.dispatch.id) if v.id == variant_id)
            composer = self._composer(variant_rendering(stored))
            self._by_id[variant_id] = composer
            self._by_key.setdefault(stored.key, (variant_id, composer))
        return composer

    def _composer(self, rendered: Rendered) -> Composer:
        return Composer(rendered, self.settings, self.secret, self.dispatch.week)

    def _load(self, key: Key) -> tuple[int, Composer]:
        store, dispatch = self.store, self.dispatch
        stored = store.variants.get(dispatch.id, key)
        if stored is not None:
            return stored.id, self._composer(variant_rendering(stored))
        if key == self.full:
            return self._full()
        shown = variant_dispatch(
            dispatch,
            key,
            order=self.settings.sections,
            name=self.settings.name,
            subject_set=self._subject_set,
            preheader_set=self._preheader_set,
        )
        rendered = render_tracked(store, self.settings, shown)
        self.rendered += 1
        if not self.freeze:
            return 0, self._composer(rendered)
        with store.transaction():  # the variant and the links it carries, together
            stored = store.variants.freeze(
                dispatch.id,
                key,
                is_full=False,
                subject=rendered.subject,
                preheader=rendered.preheader,
                lead_signal_id=lead_of(shown),
                html=rendered.compiled_html,
                text=rendered.compiled_text,
                slot_nonce=rendered.nonce,
            )
            keep_links(store, rendered, frozen=True)
        return stored.id, self._composer(variant_rendering(stored))  # a concurrent freeze wins

    def _full(self) -> tuple[int, Composer]:
        """The dispatch's own copy: frozen when sending began (one made by a version before
        variants is taken as it is), or rendered now."""
        store, dispatch = self.store, self.dispatch
        frozen = frozen_rendering(dispatch)
        if frozen is None:
            rendered = render_tracked(store, self.settings, dispatch)
            self.rendered += 1
            if not self.freeze:
                return 0, self._composer(rendered)
            with store.transaction():
                store.dispatches.freeze(
                    dispatch.id, rendered.compiled_html, rendered.compiled_text, rendered.nonce
                )
                keep_links(store, rendered, frozen=True)
            row = store.dispatches.get_by_id(dispatch.id)
            assert row is not None  # a concurrent freeze wins: one copy for all
            html, text, nonce = row["html"], row["text"], row["slot_nonce"]
        elif not self.freeze:
            return 0, self._composer(frozen)
        else:
            html, text, nonce = frozen.compiled_html, frozen.compiled_text, frozen.nonce
        stored = store.variants.freeze(
            dispatch.id,
            self.full,
            is_full=True,
            subject=dispatch.subject,
            preheader=dispatch.preheader,
            lead_signal_id=lead_of(dispatch),
            html=html,
            text=text,
            slot_nonce=nonce,
        )
        return stored.id, self._composer(variant_rendering(stored))
