"""The list of feeds, kept under version control as TOML or YAML, and what a source must be.

TOML: `[[source]]` tables. YAML: a `sources:` list (or a bare list) of mappings. Fields:
name, url, category, label, enabled. Relative file paths are taken from the file's folder.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from newsletter.errors import FeedError
from newsletter.signals.fetch import local_path
from newsletter.store import Store

KNOWN = ("name", "url", "category", "label", "enabled")
_NAME = re.compile(r"^[\w][\w.\-]{0,63}$")


@dataclass(frozen=True)
class SourceSpec:
    name: str
    url: str
    category: str | None = None
    label: str | None = None
    enabled: bool = True


def check_source(
    name: str, url: str, category: str | None = None, label: str | None = None, where: str = ""
) -> None:
    """Refuse a source that could never be collected, naming what is wrong."""
    at = f"{where}: " if where else ""
    if not _NAME.match(name or ""):
        raise FeedError(
            f"{at}name {name!r}: use letters, digits, '.', '-' or '_' (up to 64, no spaces)"
        )
    url = (url or "").strip()
    if not url:
        raise FeedError(f"{at}url: missing")
    try:
        path = local_path(url)
    except FeedError as exc:
        raise FeedError(f"{at}url: {exc}") from None
    if path is None:
        parts = urlsplit(url)
        if not parts.hostname or any(c.isspace() for c in parts.netloc):
            raise FeedError(f"{at}url {url!r}: no valid host name")
        try:
            parts.port  # noqa: B018 (raises on a port out of range)
        except ValueError:
            raise FeedError(f"{at}url {url!r}: invalid port") from None
    for field_name, value in (("category", category), ("label", label)):
        if value is not None and (not value.strip() or "\n" in value):
            raise FeedError(f"{at}{field_name}: must be one non-empty line")


def _entries(path: Path, text: str) -> list[Any]:
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise FeedError(f"{path}: invalid YAML ({' '.join(str(exc).split())})") from None
        if isinstance(data, dict):
            unknown = set(data) - {"sources"}
            if unknown:
                raise FeedError(f"{path}: unknown top-level key {sorted(unknown)[0]!r}")
            data = data.get("sources")
        if not isinstance(data, list):
            raise FeedError(f"{path}: expected a `sources:` list of mappings")
        return data
    if path.suffix.lower() == ".toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise FeedError(f"{path}: invalid TOML ({exc})") from None
        unknown = set(data) - {"source"}
        if unknown:
            raise FeedError(
                f"{path}: unknown top-level key {sorted(unknown)[0]!r} (use [[source]])"
            )
        entries = data.get("source", [])
        if not isinstance(entries, list):
            raise FeedError(f"{path}: `source` must be an array of tables ([[source]])")
        return entries
    raise FeedError(f"{path}: unknown format: use .toml, .yaml or .yml")


def read_sources_file(path: Path) -> list[SourceSpec]:
    """Parse and check every source of the file; raise FeedError naming the entry and field."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FeedError(f"{path}: cannot read ({getattr(exc, 'strerror', None) or exc})") from None
    specs: list[SourceSpec] = []
    seen: set[str] = set()
    for index, entry in enumerate(_entries(path, text), start=1):
        where = f"{path}: source #{index}"
        if not isinstance(entry, dict):
            raise FeedError(f"{where}: expected a mapping of fields")
        unknown = set(entry) - set(KNOWN)
        if unknown:
            raise FeedError(
                f"{where}: unknown field {sorted(unknown)[0]!r} (known: {', '.join(KNOWN)})"
            )
        for field_name in ("name", "url", "category", "label"):
            if field_name in entry and not isinstance(entry[field_name], str):
                raise FeedError(f"{where}: {field_name}: expected text")
        if "enabled" in entry and not isinstance(entry["enabled"], bool):
            raise FeedError(f"{where}: enabled: expected true or false")
        if not entry.get("name") or not entry.get("url"):
            raise FeedError(f"{where}: needs a name and a url")
        name = entry["name"].strip()
        where = f"{path}: source {name!r}"
        if name in seen:
            raise FeedError(f"{where}: the name appears twice")
        seen.add(name)
        url = entry["url"].strip()
        check_source(name, url, entry.get("category"), entry.get("label"), where)
        local = local_path(url)
        if local is not None and not local.is_absolute():
            url = str((path.parent / local).resolve())
        specs.append(
            SourceSpec(
                name=name,
                url=url,
                category=entry.get("category"),
                label=entry.get("label"),
                enabled=entry.get("enabled", True),
            )
        )
    return specs


@dataclass
class LoadReport:
    added: list[str]
    updated: list[str]
    removed: list[str]


def load_sources(store: Store, path: Path, *, prune: bool = False) -> LoadReport:
    """Make the store's sources match the file, in one transaction; `prune` removes the rest."""
    specs = read_sources_file(path)
    known = {row["name"]: row for row in store.sources.list()}
    report = LoadReport([], [], [])
    with store.transaction():
        for spec in specs:
            row = known.get(spec.name)
            if row is None:
                report.added.append(spec.name)
            elif (row["url"], row["category"], row["label"], bool(row["enabled"])) != (
                spec.url,
                spec.category,
                spec.label,
                spec.enabled,
            ):
                report.updated.append(spec.name)
            store.sources.add(
                spec.name, spec.url, category=spec.category, label=spec.label, enabled=spec.enabled
            )
        if prune:
            wanted = {spec.name for spec in specs}
            for name in sorted(set(known) - wanted):
                store.sources.remove(name)
                report.removed.append(name)
    return report
