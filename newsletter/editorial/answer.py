"""A model's answer about one signal, checked like an annotation file before it is a draft.

The answer is untrusted text: it is validated by the annotation files' own validator, may hold
the editorial read and nothing else (no url, title, id or another signal's fields), and every
phrase of it is reduced to plain text, as feed text is.
"""

from __future__ import annotations

import json
import re
from typing import Any

from newsletter.editorial.prompt import DRAFT_FIELDS
from newsletter.errors import AnnotationError, DraftFailed
from newsletter.models import LIST_FIELDS, Signal
from newsletter.signals.annotations import validate
from newsletter.signals.sanitise import untrusted_text

_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.S | re.I)
_THINKING = re.compile(r"<think>.*?</think>", re.S | re.I)


def read_answer(content: str | None, signal: Signal) -> dict[str, Any]:
    """The validated editorial fields of an answer; DraftFailed says what is wrong with it."""
    data = _json_object(content)
    extra = sorted(set(data) - set(DRAFT_FIELDS))
    if extra:
        raise DraftFailed(
            f"answer sets {', '.join(map(str, extra))}: a draft holds only the editorial read"
        )
    cleaned = {name: _clean(value) for name, value in data.items()}
    missing = [name for name in DRAFT_FIELDS if cleaned.get(name) in (None, "", [])]
    if missing:
        raise DraftFailed(f"answer lacks {', '.join(missing)}")
    try:
        # the signal's own URL is what the validator matches on: never one from the answer
        values = validate({**cleaned, "url": signal.url}, "answer")
    except AnnotationError as exc:
        raise DraftFailed(str(exc)) from None
    return {name: values[name] for name in DRAFT_FIELDS}


def _json_object(content: str | None) -> dict[str, Any]:
    text = (content or "").strip()
    if not text:
        raise DraftFailed("empty answer")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        data = _embedded(text)
        if data is None:
            raise DraftFailed(f"answer is not JSON ({exc.msg}): {_snippet(text)}") from None
    if not isinstance(data, dict):
        raise DraftFailed(f"answer is a JSON {type(data).__name__}, not an object of fields")
    return data


def _embedded(text: str) -> Any:
    """A JSON object inside a code fence or after a reasoning model's <think> block (servers
    that ignore response_format answer like this)."""
    text = _THINKING.sub("", text).strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1)
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        return None
    try:
        return json.loads(text[start : end + 1])
    except json.JSONDecodeError:
        return None


def _clean(value: Any) -> Any:
    """Plain text wherever text is: tags, entities and control characters removed."""
    if isinstance(value, str):
        return untrusted_text(value)
    if isinstance(value, list):
        return [untrusted_text(v) if isinstance(v, str) else v for v in value]
    return value


def _snippet(text: str) -> str:
    line = " ".join(text.split())
    return repr(line[:80] + ("…" if len(line) > 80 else ""))


def as_signal_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """Stored draft fields as the Signal model holds them (lists become tuples)."""
    return {k: tuple(v) if k in LIST_FIELDS else v for k, v in fields.items()}
