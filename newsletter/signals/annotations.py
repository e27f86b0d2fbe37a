"""The editor's annotations: Markdown with front matter, JSON or JSON Lines, validated whole.

Parsing and validation are pure; `import_annotations` applies every record in one transaction,
so one bad field anywhere means nothing is written.

Files come from editors, and sometimes from elsewhere: parsing is bounded. YAML aliases and
anchors are refused (436 bytes of nested aliases expand to gigabytes), front matter and files
have a size cap, every field a length cap, lists a length cap, numbers must be finite and
small, and an error message shows at most the start of a value, never an expanded one.
"""

from __future__ import annotations

import difflib
import json
import math
import re
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
import yaml.composer

from newsletter.errors import AnnotationError
from newsletter.models import EDITORIAL_FIELDS, HORIZONS, LIST_FIELDS, SCORE_FIELDS
from newsletter.signals.canonical import arxiv_id_of, arxiv_url, bare_arxiv_id, canonical_url
from newsletter.signals.sanitise import text_to_html
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
ONE_LINE_FIELDS = ("title", "source", "category", "guid")
KNOWN_FIELDS = {*TEXT_FIELDS, *LIST_FIELDS, *SCORE_FIELDS, "url", "published", "horizon"}
ANNOUNCE_TYPES = ("new", "cross", "replace", "replace-cross")

#: bounds on what one annotation may hold
MAX_FILE_BYTES = 16 * 1024 * 1024  # a JSON export of thousands of signals fits
MAX_FRONT_MATTER_BYTES = 128 * 1024
MAX_LIST_ITEMS = 50
MAX_PHRASE = 300  # one winner or loser
MAX_ONE_LINE = 500  # title, source, category, guid
MAX_URL = 2048
MAX_LONG_TEXT = 100_000  # summary, notes
MAX_TEXT = 10_000  # the editor's paragraphs
_LONG_TEXT_FIELDS = ("summary", "notes")


@dataclass
class Record:
    """One validated annotation, with where it came from for error messages."""

    where: str
    values: dict[str, Any]
    body: str | None = None


@dataclass(frozen=True)
class Change:
    """What one record does: create a signal, or change these fields of an existing one."""

    where: str
    action: str  # created | updated | unchanged
    title: str
    signal_id: int | None = None
    fields: tuple[str, ...] = ()


@dataclass
class ImportReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    dry_run: bool = False


def _fail(where: str, field_name: str | None, message: str) -> AnnotationError:
    return AnnotationError(
        f"{where}: {field_name}: {message}" if field_name else f"{where}: {message}"
    )


def _shown(value: Any) -> str:
    """A value for an error message: short scalars as they are, anything else described."""
    if isinstance(value, float) and not math.isfinite(value):
        return "a number too large to use" if not math.isnan(value) else "NaN"
    if isinstance(value, int | float) and not isinstance(value, bool):
        text = repr(value)
        return text if len(text) <= 20 else f"a {len(text)}-digit number"
    if isinstance(value, str):
        return repr(value) if len(value) <= 60 else f"{value[:40]!r}... ({len(value)} characters)"
    if isinstance(value, list | dict):
        return f"a {type(value).__name__} of {len(value)} items"
    return type(value).__name__


def _score(value: Any, where: str, name: str) -> int:
    expected = "expected a whole number from 0 to 100"
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _fail(where, name, f"{expected}, got {_shown(value)}")
    if isinstance(value, str):
        if len(value) > 20:
            raise _fail(where, name, f"{expected}, got {_shown(value)}")
        try:
            value = float(value)
        except ValueError:
            raise _fail(where, name, f"{expected}, got {_shown(value)}") from None
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        raise _fail(where, name, f"must be a whole number from 0 to 100, got {_shown(value)}")
    if not 0 <= value <= 100:
        raise _fail(where, name, f"must be a whole number from 0 to 100, got {_shown(value)}")
    return int(value)


def _horizon(value: Any, where: str) -> str:
    text = str(value).strip().lower().replace("-", " ").replace("_", " ")
    if text in ("short", "medium", "long"):
        text += " term"
    if text not in HORIZONS:
        raise _fail(where, "horizon", f"must be short, medium or long term, got {_shown(value)}")
    return text


def _capped(value: str, where: str, name: str, limit: int) -> str:
    if len(value) > limit:
        raise _fail(where, name, f"at most {limit} characters, got {len(value)}")
    return value


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
                raise _fail(where, "published", f"not a date: {_shown(value)}") from None
    else:
        raise _fail(where, "published", f"not a date: {_shown(value)}")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


class InvalidAnnotations(AnnotationError):
    """Every problem found, each naming file, line and field, so the editor fixes them in one
    pass instead of one per import."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        if len(problems) == 1:
            super().__init__(problems[0])
        else:
            listed = "".join(f"\n  {problem}" for problem in problems)
            super().__init__(f"{len(problems)} problems (nothing was written):{listed}")


def _problems(exc: AnnotationError) -> list[str]:
    return exc.problems if isinstance(exc, InvalidAnnotations) else [str(exc)]


def validate(
    raw: dict[str, Any],
    where: str,
    lines: dict[str, int] | None = None,
    file: str | None = None,
) -> dict[str, Any]:
    """Check every field; return values keyed by the store's column names.

    `lines` gives each field's line in `file` (default: `where`), for the error message. Raises
    InvalidAnnotations listing every bad field, not only the first.
    """
    if not isinstance(raw, dict):
        raise _fail(where, None, f"expected a mapping of fields, got {type(raw).__name__}")

    def at(name: str) -> str:
        return f"{file or where}:{lines[name]}" if lines and name in lines else where

    values: dict[str, Any] = {}
    problems: list[str] = []
    for name, value in raw.items():
        if value is None and name in KNOWN_FIELDS:
            continue
        try:
            values.update(_field(str(name), value, at(name)))
        except AnnotationError as exc:
            problems.append(str(exc))
    if not any(raw.get(k) is not None for k in ("url", "guid", "arxiv_id")):
        problems.append(str(_fail(where, "url", MATCH_FIELDS_NEEDED)))
    if problems:
        raise InvalidAnnotations(problems)
    if "source" in values:
        values["source_label"] = values.pop("source")
    if "summary" in values:
        values["summary_text"] = values.pop("summary")
        values["summary_html"] = text_to_html(values["summary_text"])
    if "arxiv_id" not in values and "url" in values:
        found = arxiv_id_of(values["url"], values.get("guid"))
        if found:
            values["arxiv_id"] = found
    return values


MATCH_FIELDS_NEEDED = "every annotation needs a url, guid or arxiv_id to match"


def _field(name: str, value: Any, where: str) -> dict[str, Any]:
    """One field checked: the column values it sets, or AnnotationError saying what is wrong."""
    if name not in KNOWN_FIELDS:
        close = difflib.get_close_matches(str(name), KNOWN_FIELDS, n=1)
        hint = (
            f"did you mean {close[0]!r}?" if close else f"known: {', '.join(sorted(KNOWN_FIELDS))}"
        )
        raise _fail(where, name, f"unknown field ({hint})")
    if name in SCORE_FIELDS:
        return {name: _score(value, where, name)}
    if name in LIST_FIELDS:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise _fail(where, name, "expected a list of short phrases")
        if len(value) > MAX_LIST_ITEMS:
            raise _fail(where, name, f"at most {MAX_LIST_ITEMS} items, got {len(value)}")
        for item in value:
            _capped(item, where, name, MAX_PHRASE)
        return {name: [v.strip() for v in value if v.strip()]}
    if name == "horizon":
        return {name: _horizon(value, where)}
    if name == "published":
        return {name: _published(value, where)}
    if name == "url":
        if isinstance(value, str):
            _capped(value, where, name, MAX_URL)
        if not isinstance(value, str) or urlsplit(value).scheme not in ("http", "https"):
            raise _fail(where, name, f"expected an absolute http(s) URL, got {_shown(value)}")
        return {"link": value.strip(), "url": canonical_url(value)}
    if name == "arxiv_id":
        if isinstance(value, float):
            raise _fail(where, name, f"write it in quotes ('{value}'): a number drops zeros")
        found = bare_arxiv_id(value) if isinstance(value, str) and len(value) < 200 else None
        if not found:
            raise _fail(where, name, f"not an arXiv identifier: {_shown(value)}")
        return {name: found}
    if name == "announce_type":
        if value not in ANNOUNCE_TYPES:
            raise _fail(where, name, f"must be one of {', '.join(ANNOUNCE_TYPES)}")
        return {name: value}
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise _fail(where, name, f"expected text, got {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise _fail(where, name, f"expected text, got {_shown(value)}")
    limit = (
        MAX_ONE_LINE
        if name in ONE_LINE_FIELDS
        else MAX_LONG_TEXT
        if name in _LONG_TEXT_FIELDS
        else MAX_TEXT
    )
    text = _capped(str(value), where, name, limit).strip()
    # A title or label becomes a subject line or a header: never more than one line.
    return {name: " ".join(text.split()) if name in ONE_LINE_FIELDS else text}


def _front_matter(text: str, where: str) -> tuple[dict[str, Any], dict[str, int], str]:
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].strip() != "---":
        raise _fail(f"{where}:1", None, "expected front matter starting with a '---' line")
    end = next((i for i in range(1, len(lines)) if lines[i].strip() in ("---", "...")), None)
    if end is None:
        raise _fail(f"{where}:1", None, "front matter is not closed by a '---' line")
    block = "".join(lines[1:end])
    if len(block.encode("utf-8")) > MAX_FRONT_MATTER_BYTES:
        raise _fail(f"{where}:2", None, f"front matter over {MAX_FRONT_MATTER_BYTES // 1024} KB")
    loader = _Loader(block)
    try:
        node = loader.get_single_node()
        data = (loader.construct_document(node) if node is not None else None) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 2 if mark else 1
        problem = getattr(exc, "problem", None) or str(exc)
        raise _fail(f"{where}:{line}", None, f"invalid front matter: {problem}") from None
    except (ValueError, RecursionError):  # a number of thousands of digits, deep nesting
        raise _fail(f"{where}:2", None, "invalid front matter: a value too large") from None
    finally:
        loader.dispose()
    positions: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key, _ in node.value:
            positions[str(key.value)] = key.start_mark.line + 2
    return data, positions, "".join(lines[end + 1 :]).strip()


class _Loader(yaml.SafeLoader):
    """YAML without aliases and anchors: no expansion bombs, no merge keys."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            kind = "alias (*)" if isinstance(event, yaml.AliasEvent) else "anchor (&)"
            raise yaml.composer.ComposerError(
                None, None, f"a YAML {kind} is not allowed in an annotation", event.start_mark
            )
        return super().compose_node(parent, index)


def _json(text: str) -> Any:
    """json.loads without NaN/Infinity and without numbers longer than any score."""
    return json.loads(text, parse_constant=_no_constant, parse_int=_short_int)


def _no_constant(name: str) -> Any:
    raise json.JSONDecodeError(f"{name} is not a number JSON allows", name, 0)


def _short_int(digits: str) -> int:
    if len(digits.lstrip("-")) > 20:
        raise json.JSONDecodeError(f"a {len(digits)}-digit number", digits[:20], 0)
    return int(digits)


def _object_spans(text: str) -> list[tuple[int, int]]:
    """Where each top-level object of a JSON document (one object or a list) starts and ends."""
    decoder = json.JSONDecoder()
    position = len(text) - len(text.lstrip())
    if not text[position:].startswith("["):
        return [(position, len(text))]
    spans: list[tuple[int, int]] = []
    position += 1
    while True:
        while position < len(text) and text[position] in " \t\r\n,":
            position += 1
        if position >= len(text) or text[position] == "]":
            return spans
        _, end = decoder.raw_decode(text, position)
        spans.append((position, end))
        position = end


_COLON = re.compile(r"\s*:")


def _key_lines(text: str, start: int, end: int, first_line: int) -> dict[str, int]:
    """The line of each top-level key of one JSON object (nested keys are ignored)."""
    lines: dict[str, int] = {}
    depth, position, decoder = 0, start, json.JSONDecoder()
    while position < end:
        char = text[position]
        if char == '"':
            value, after = decoder.raw_decode(text, position)
            if depth == 1 and value not in lines and _COLON.match(text, after, end):
                lines[value] = first_line + text.count("\n", start, position)
            position = after
            continue
        if char in "{[":
            depth += 1
        elif char in "}]":
            depth -= 1
        position += 1
    return lines


def read_file(path: Path) -> list[Record]:
    """Parse and validate one file; raise AnnotationError naming file, line and field."""
    where = str(path)
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise _fail(where, None, f"larger than {MAX_FILE_BYTES // (1024 * 1024)} MB")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail(where, None, f"cannot read ({exc})") from None
    suffix = path.suffix.lower()
    if suffix in (".md", ".markdown"):
        data, positions, body = _front_matter(text, where)
        return [Record(where, validate(data, where, positions), body or None)]
    if suffix == ".jsonl":
        records, problems = [], []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                try:
                    data = _json(line)
                except json.JSONDecodeError as exc:
                    raise _fail(f"{where}:{number}", None, f"invalid JSON ({exc.msg})") from None
                records.append(Record(f"{where}:{number}", validate(data, f"{where}:{number}")))
            except AnnotationError as exc:
                problems += _problems(exc)
        if problems:
            raise InvalidAnnotations(problems)
        return records
    if suffix == ".json":
        try:
            data = _json(text)
        except json.JSONDecodeError as exc:
            raise _fail(f"{where}:{exc.lineno}", None, f"invalid JSON ({exc.msg})") from None
        except RecursionError:
            raise _fail(where, None, "invalid JSON (nested too deeply)") from None
        items = data if isinstance(data, list) else [data]
        spans = _object_spans(text)
        records, problems = [], []
        first, counted = 1, 0
        for index, item in enumerate(items):
            start, end = spans[index] if len(spans) == len(items) else (0, len(text))
            first += text.count("\n", counted, start)  # spans only move forward
            counted = start
            at = f"{where}:{first}"
            keys = _key_lines(text, start, end, first) if isinstance(item, dict) else {}
            try:
                records.append(Record(at, validate(item, at, keys, file=where)))
            except AnnotationError as exc:
                problems += _problems(exc)
        if problems:
            raise InvalidAnnotations(problems)
        return records
    raise _fail(where, None, "unknown format: use .md, .json or .jsonl")


def import_annotations(store: Store, paths: list[Path], *, dry_run: bool = False) -> ImportReport:
    """Validate every file first, then write all of it in one transaction (or none with dry_run).

    Every bad field of every file is reported at once (InvalidAnnotations), nothing written.
    """
    records: list[Record] = []
    problems: list[str] = []
    for path in paths:
        try:
            records += read_file(path)
        except AnnotationError as exc:
            problems += _problems(exc)
    if problems:
        raise InvalidAnnotations(problems)
    return apply_records(store, records, dry_run=dry_run)


def apply_records(
    store: Store, records: list[Record], *, dry_run: bool = False, target: int | None = None
) -> ImportReport:
    """Apply validated records in one transaction; `target` pins them to one signal by id.

    A record that cannot apply (a new signal without a title) is reported with every other
    one, and the transaction rolls back: nothing is written.
    """
    report = ImportReport(dry_run=dry_run)
    problems: list[str] = []
    with store.transaction():
        for record in records:
            try:
                change = _apply(store, record, dry_run, target)
            except AnnotationError as exc:
                problems += _problems(exc)
                continue
            getattr(report, change.action).append(record.where)
            report.changes.append(change)
        if problems:
            raise InvalidAnnotations(problems)
    return report


def _apply(store: Store, record: Record, dry_run: bool, target: int | None) -> Change:
    values = dict(record.values)
    if target is not None:
        existing = store.signals.row(target)
        if existing is None:
            raise _fail(record.where, None, f"no signal with id {target}")
    else:
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
    if existing is not None and values.get("summary_text") == existing["summary_text"]:
        # The same text as stored: keep the feed's richer HTML (links, emphasis).
        values.pop("summary_html", None)
    try:
        if existing is None:
            if "url" not in values and values.get("arxiv_id"):
                values["url"] = values["link"] = arxiv_url(values["arxiv_id"])
            if "title" not in values or "url" not in values:
                missing = "title" if "title" not in values else "url"
                raise _fail(
                    record.where,
                    missing,
                    "no stored signal matches, and a new one needs a title and a url",
                )
            signal_id = None if dry_run else store.signals.create(values)
            return Change(record.where, "created", values["title"], signal_id)
        changed = tuple(k for k, v in values.items() if existing.get(k) != _stored(k, v))
        if not changed:
            return Change(record.where, "unchanged", existing["title"], existing["id"])
        if not dry_run:
            store.signals.update(existing["id"], {k: values[k] for k in changed})
        return Change(record.where, "updated", existing["title"], existing["id"], changed)
    except sqlite3.IntegrityError as exc:
        raise _fail(record.where, "url", f"conflicts with another stored signal ({exc})") from None


def _stored(name: str, value: Any) -> Any:
    if value is None:
        return None
    if name in LIST_FIELDS:
        return json.dumps(list(value), ensure_ascii=False)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


# Export: the same fields the import takes, in the order of the seed pages.
EXPORT_ORDER = (
    "title",
    "url",
    "guid",
    "arxiv_id",
    "announce_type",
    "source",
    "published",
    "category",
    "signal_score",
    "horizon",
    "why_now",
    "why_important",
    "what_changes",
    "winners",
    "losers",
    "effects_direct",
    "effects_second",
    "effects_third",
    "editorial_confidence",
    "structural_impact",
    "summary",
    "notes",
)


def to_record(row: dict[str, Any]) -> dict[str, Any]:
    """A stored signal as the import's fields; empty fields left out."""
    column = {"source": "source_label", "summary": "summary_text", "url": "link"}
    record: dict[str, Any] = {}
    for name in EXPORT_ORDER:
        value = row.get(column.get(name, name))
        if name == "url":
            value = value or row["url"]
        if name in LIST_FIELDS:
            value = json.loads(value) if value else []
        if value not in (None, "", []):
            record[name] = value
    return record


class _Dumper(yaml.SafeDumper):
    pass


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text)


def to_markdown(row: dict[str, Any]) -> str:
    """One signal as a Markdown annotation file; importing it back changes nothing.

    The body holds the editor's notes when the signal has a summary (the import reads a body
    as notes then); otherwise the notes stay in the front matter.
    """
    record = to_record(row)
    body = ""
    if "summary" in record and "notes" in record:
        body = record.pop("notes")
    front = yaml.dump(record, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
    return f"---\n{front}---\n" + (f"\n{body}\n" if body else "")


def export_signals(rows: Iterable[dict[str, Any]], fmt: str) -> str:
    """Signals as JSON Lines or a JSON list (Markdown is one file a signal: see to_markdown)."""
    records = [to_record(row) for row in rows]
    if fmt == "jsonl":
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    if fmt == "json":
        return json.dumps(records, ensure_ascii=False, indent=2) + "\n"
    raise AnnotationError(f"unknown export format {fmt!r}: use md, json or jsonl")


def markdown_name(row: dict[str, Any]) -> str:
    """A stable file name for a signal's Markdown file."""
    stem = row.get("arxiv_id") or f"signal-{row['id']}"
    return f"{str(stem).replace('/', '_')}.md"


def edit_text(store: Store, signal_id: int, text: str, *, where: str = "edited") -> ImportReport:
    """Apply an edited Markdown form back to the signal it came from, all or nothing."""
    data, positions, body = _front_matter(text, where)
    record = Record(where, validate(data, where, positions), body or None)
    # The form shows every field: one deleted from it is cleared, not left as it was.
    cleared = set(EDITORIAL_FIELDS) - set(record.values) - ({"notes"} if body else set())
    record.values.update(dict.fromkeys(cleared))
    return apply_records(store, [record], target=signal_id)
