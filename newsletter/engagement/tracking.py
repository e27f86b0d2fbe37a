"""Renderings with counted links, and keeping their links: what sending and the preview call."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

from newsletter.dispatch.render import Rendered, render_dispatch
from newsletter.engagement.links import PATH, parse, tracker_for
from newsletter.models import Dispatch
from newsletter.settings import Settings
from newsletter.store import Store


def render_tracked(
    store: Store,
    settings: Settings,
    dispatch: Dispatch,
    *,
    draft_marks: Mapping[int, str] | None = None,
) -> Rendered:
    """A new rendering of the dispatch whose content links are counted (NEWSLETTER_TRACKING;
    `off`: the links as they are)."""
    tracker = tracker_for(settings, store.secret_key(settings.secret_key), dispatch.id)
    return render_dispatch(dispatch, settings, draft_marks=draft_marks, tracker=tracker)


def keep_links(store: Store, rendered: Rendered, *, frozen: bool) -> None:
    """Store the rendering's links so `/r/` can follow them: `frozen` when this is the copy
    readers get (clicks count); otherwise a test message's or a preview's (they redirect and
    count nothing, and stop working at the freeze unless the frozen copy has them too)."""
    if rendered.links:
        store.clicks.add_links(rendered.links, frozen=frozen)


def destinations(store: Store) -> Callable[[str], str | None]:
    """Where a tracked link of ours leads (None for any other URL): the pre-flight checks look
    behind `/r/` at the destination, as a reader who clicks gets there."""

    def destination(url: str) -> str | None:
        path = urlsplit(url).path
        parsed = parse(path[len(PATH) :]) if path.startswith(PATH) else None
        row = store.clicks.link(parsed[0]) if parsed else None
        return row["url"] if row and row["kind"] != "open" else None

    return destination
