"""A sources file kept under version control (TOML): the list of feeds to collect."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from newsletter.errors import FeedError
from newsletter.fetch import local_path

KNOWN = {"name", "url", "category", "label", "enabled"}


@dataclass(frozen=True)
class SourceSpec:
    name: str
    url: str
    category: str | None = None
    label: str | None = None
    enabled: bool = True


def read_sources_file(path: Path) -> list[SourceSpec]:
    """Parse `[[source]]` tables; relative file paths are taken from the file's own folder."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise FeedError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise FeedError(f"{path}: invalid TOML ({exc})") from None
    specs = []
    for index, entry in enumerate(data.get("source", []), start=1):
        where = f"{path}: source #{index}"
        unknown = set(entry) - KNOWN
        if unknown:
            raise FeedError(f"{where}: unknown field {sorted(unknown)[0]!r}")
        if not entry.get("name") or not entry.get("url"):
            raise FeedError(f"{where}: needs a name and a url")
        url = str(entry["url"])
        local = local_path(url)
        if local is not None and not local.is_absolute():
            url = str((path.parent / local).resolve())
        specs.append(
            SourceSpec(
                name=str(entry["name"]),
                url=url,
                category=entry.get("category"),
                label=entry.get("label"),
                enabled=bool(entry.get("enabled", True)),
            )
        )
    return specs
