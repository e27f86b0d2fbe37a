"""The sections a reader can choose: their titles, and reading a list of them (a form, a CSV
cell, a CLI option). Titles match whatever their case, as the dispatch's sections do."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from newsletter.dispatch.select import UNCATEGORISED
from newsletter.errors import SubscriberError
from newsletter.settings import Settings
from newsletter.store import Store

#: the sections of this many latest dispatches are offered beside NEWSLETTER_SECTIONS
RECENT_DISPATCHES = 8


class UnknownSection(SubscriberError):
    """A section title that is neither configured nor in a recent dispatch."""


def known_sections(store: Store, settings: Settings) -> list[str]:
    """The sections a reader can choose from: NEWSLETTER_SECTIONS in their order, then the
    categories of recent dispatches alphabetically, spelled as the dispatch titles them
    (a configured section keeps its configured spelling; categories match whatever their case)."""
    titles = {name.lower(): name for name in settings.sections}
    others: dict[str, str] = {}
    for raw in store.dispatches.recent_sections(RECENT_DISPATCHES):
        name = (raw or "").strip() or UNCATEGORISED
        if name.lower() not in titles:
            others.setdefault(name.lower(), name)
    return [*settings.sections, *(others[key] for key in sorted(others))]


def resolve_titles(known: Sequence[str], given: Iterable[str]) -> list[str]:
    """The known titles `given` names (any case); UnknownSection naming the first unknown one."""
    by_key = {title.lower(): title for title in known}
    found = []
    for raw in given:
        text = " ".join(str(raw).split())
        if not text:
            continue
        title = by_key.get(text.lower())
        if title is None:
            raise UnknownSection(
                f"unknown section {text[:80]!r} (sections: {', '.join(known) or 'none'})"
            )
        if title not in found:
            found.append(title)
    return found


def sections_off_for(store: Store, settings: Settings, chosen: Iterable[str]) -> list[str]:
    """What a reader who chose `chosen` turns off, relative to the sections known now (a sign-up
    or an import: any section that appears later will be on)."""
    known = known_sections(store, settings)
    taken = set(resolve_titles(known, chosen))
    return [title for title in known if title not in taken]


def split_titles(text: str) -> list[str]:
    """A list of section titles as a CSV cell or a CLI option writes it: `,` or `;` between."""
    return [part.strip() for part in text.replace(";", ",").split(",") if part.strip()]
