"""The editor's annotations: Markdown with front matter, JSON or JSON Lines, validated whole.

Parsing and validation are pure; `import_annotations` applies every record in one transaction,
so one bad field anywhere means nothing is written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from newsletter.errors import AnnotationError
from newsletter.models import HORIZONS, LIST_FIELDS, SCORE_FIELDS
from newsletter.parse import arxiv_id_of, canonical_url
from newsletter.sanitise import text_to_html
from newsletter.store import Store

TEXT_FIELDS = (
    "title",
    "source",
    "category",
    "why_now",
    "why_important",
    "what_changes",
    "effects_direct",
    "effects_second",
    "effects_third",
    "summary",
    "notes",
    "guid",
    "arxiv_id",
    "announce_type",
)
KNOWN_FIELDS = {*TEXT_FIELDS, *LIST_FIELDS, *SCORE_FIELDS, "url", "published", "horizon"}
ANNOUNCE_TYPES = ("new", "cross", "replace", "replace-cross")


@dataclass
class Record:
    """One validated annotation, with where it came from for error messages."""

    where: str
    values: dict[str, Any]
    body: str | None = None


@dataclass
class ImportReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def _fail(where: str, field_name: str | None, message: str) -> AnnotationError:
    return AnnotationError(
        f"{where}: {field_name}: {message}" if field_name else f"{where}: {message}"
    )


def _score(value: Any, where: str, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _fail(where, name, f"expected a whole number from 0 to 100, got {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise _fail(where, name, f"expected a whole number from 0 to 100, got {value!r}") from None
    if number != int(number) or not 0 <= number <= 100:
        raise _fail(where, name, f"must be a whole number from 0 to 100, got {value!r}")
    return int(number)


def _horizon(value: Any, where: str) -> str:
    text = str(value).strip().lower().replace("-", " ").replace("_", " ")
    if text in ("short", "medium", "long"):
        text += " term"
    if text not in HORIZONS:
        raise _fail(where, "horizon", f"must be short, medium or long term, got {value!r}")
    return text


def _published(value: Any, where: str) -> datetime:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime.combine(value, time(0))
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            try:
                moment = parsedate_to_datetime(value)
            except (TypeError, ValueError):
                raise _fail(where, "published", f"not a date: {value!r}") from None
    else:
        raise _fail(where, "published", f"not a date: {value!r}")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def validate(
    raw: dict[str, Any], where: str, lines: dict[str, int] | None = None
) -> dict[str, Any]:
    """Check every field; return values keyed by the store's column names."""
    if not isinstance(raw, dict):
        raise _fail(where, None, f"expected a mapping of fields, got {type(raw).__name__}")

    def at(name: str) -> str:
        return f"{where}:{lines[name]}" if lines and name in lines else where

    values: dict[str, Any] = {}
    for name, value in raw.items():
        if name not in KNOWN_FIELDS:
            known = ", ".join(sorted(KNOWN_FIELDS))
            raise _fail(at(name), name, f"unknown field (known: {known})")
        if value is None:
            continue
        if name in SCORE_FIELDS:
            values[name] = _score(value, at(name), name)
        elif name in LIST_FIELDS:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise _fail(at(name), name, "expected a list of short phrases")
            values[name] = [v.strip() for v in value if v.strip()]
        elif name == "horizon":
            values[name] = _horizon(value, at(name))
        elif name == "published":
            values[name] = _published(value, at(name))
        elif name == "url":
            if not isinstance(value, str) or urlsplit(value).scheme not in ("http", "https"):
                raise _fail(at(name), name, f"expected an absolute http(s) URL, got {value!r}")
            values["link"] = value.strip()
            values["url"] = canonical_url(value)
        elif name == "announce_type":
            if value not in ANNOUNCE_TYPES:
                raise _fail(at(name), name, f"must be one of {', '.join(ANNOUNCE_TYPES)}")
            values[name] = value
        else:
            if not isinstance(value, str | int | float) or isinstance(value, bool):
                raise _fail(at(name), name, f"expected text, got {type(value).__name__}")
            values[name] = str(value).strip()
    if "source" in values:
        values["source_label"] = values.pop("source")
    if "summary" in values:
        values["summary_text"] = values.pop("summary")
        values["summary_html"] = text_to_html(values["summary_text"])
    if not any(k in values for k in ("url", "guid", "arxiv_id")):
        raise _fail(where, "url", "every annotation needs a url, guid or arxiv_id to match")
    if "arxiv_id" not in values and "url" in values:
        found = arxiv_id_of(values["url"], values.get("guid"))
        if found:
            values["arxiv_id"] = found
    return values


def _front_matter(text: str, where: str) -> tuple[dict[str, Any], dict[str, int], str]:
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].strip() != "---":
        raise _fail(f"{where}:1", None, "expected front matter starting with a '---' line")
    end = next((i for i in range(1, len(lines)) if lines[i].strip() in ("---", "...")), None)
    if end is None:
        raise _fail(f"{where}:1", None, "front matter is not closed by a '---' line")
    block = "".join(lines[1:end])
    try:
        node = yaml.compose(block, Loader=yaml.SafeLoader)
        data = yaml.safe_load(block) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 2 if mark else 1
        raise _fail(f"{where}:{line}", None, f"invalid front matter: {exc}") from None
    positions: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key, _ in node.value:
            positions[str(key.value)] = key.start_mark.line + 2
    return data, positions, "".join(lines[end + 1 :]).strip()


def read_file(path: Path) -> list[Record]:
    """Parse and validate one file; raise AnnotationError naming file, line and field."""
    where = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail(where, None, f"cannot read ({exc})") from None
    suffix = path.suffix.lower()
    if suffix in (".md", ".markdown"):
        data, positions, body = _front_matter(text, where)
        return [Record(where, validate(data, where, positions), body or None)]
    if suffix == ".jsonl":
        records = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                raise _fail(f"{where}:{number}", None, f"invalid JSON ({exc.msg})") from None
            records.append(Record(f"{where}:{number}", validate(data, f"{where}:{number}")))
        return records
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise _fail(f"{where}:{exc.lineno}", None, f"invalid JSON ({exc.msg})") from None
        items = data if isinstance(data, list) else [data]
        return [Record(f"{where}[{i}]", validate(d, f"{where}[{i}]")) for i, d in enumerate(items)]
    raise _fail(where, None, "unknown format: use .md, .json or .jsonl")


def import_annotations(store: Store, paths: list[Path], *, dry_run: bool = False) -> ImportReport:
    """Validate every file first, then write all of it in one transaction (or none with dry_run)."""
    records = [record for path in paths for record in read_file(path)]
    report = ImportReport()
    with store.transaction():
        for record in records:
            values = dict(record.values)
            existing = store.signals.find(
                url=values.get("url"), guid=values.get("guid"), arxiv_id=values.get("arxiv_id")
            )
            if record.body:
                has_summary = existing is not None and existing["summary_text"]
                if has_summary or "summary_text" in values:
                    values["notes"] = record.body
                else:
                    values["summary_text"] = record.body
                    values["summary_html"] = text_to_html(record.body)
            if existing is None:
                if "title" not in values or "url" not in values:
                    raise _fail(record.where, "title", "a new signal needs a title and a url")
                if not dry_run:
                    store.signals.create(values)
                report.created.append(record.where)
            elif any(existing.get(k) != _stored(k, v) for k, v in values.items()):
                if not dry_run:
                    store.signals.update(existing["id"], values)
                report.updated.append(record.where)
            else:
                report.unchanged.append(record.where)
    return report


def _stored(name: str, value: Any) -> Any:
    if name in LIST_FIELDS:
        return json.dumps(list(value), ensure_ascii=False)
    if isinstance(value, datetime):
        return value.isoformat()
    return value
