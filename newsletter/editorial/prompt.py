"""The question asked about one signal: the editor's Jinja template, and the answer's schema.

The template sees the signal's title, source and plain-text summary and nothing else: no other
signal, no setting, no secret can reach the model through it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from newsletter.errors import EditorialError
from newsletter.models import EDITORIAL_FIELDS, HORIZONS, Signal

TEMPLATE = "editorial/draft.txt.j2"
#: the longest summary put in a question (a full abstract is ~2,000 characters)
MAX_SUMMARY = 6_000

#: every field of the brief's editorial read, in the order of the seed pages: the editor's
#: fields but the section (the source's) and the private notes
DRAFT_FIELDS = tuple(f for f in EDITORIAL_FIELDS if f not in ("category", "notes"))
_SCORE = "a whole number from 0 to 100"
_TEXT = {"type": "string"}
_PHRASES = {"type": "array", "items": {"type": "string"}}

#: JSON Schema of an answer (strict structured outputs: every key required, nothing else;
#: ranges are checked by the annotation validator, as keywords like `maximum` are not
#: accepted by every server)
ANSWER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "signal_score": {"type": "integer", "description": _SCORE},
        "horizon": {"type": "string", "enum": list(HORIZONS)},
        "why_now": _TEXT,
        "why_important": _TEXT,
        "what_changes": _TEXT,
        "winners": _PHRASES,
        "losers": _PHRASES,
        "effects_direct": _TEXT,
        "effects_second": _TEXT,
        "effects_third": _TEXT,
        "editorial_confidence": {"type": "integer", "description": _SCORE},
        "structural_impact": {"type": "integer", "description": _SCORE},
    },
    "required": list(DRAFT_FIELDS),
    "additionalProperties": False,
}
SCHEMA_NAME = "signal_read"


def templates_dir() -> Path:
    """The installed copy (wheel) or the repository's `templates/` (editable install, tests)."""
    package = Path(__file__).parent.parent
    installed = package / "templates"
    return installed if installed.is_dir() else package.parent / "templates"


@dataclass(frozen=True)
class Prompt:
    """The loaded template, with the version it declares and a hash of its text."""

    template: jinja2.Template
    version: str
    digest: str

    @classmethod
    def load(cls, directory: Path | None = None) -> Prompt:
        folder = directory or templates_dir()
        path = folder / TEMPLATE
        try:
            source = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise EditorialError(f"{path}: cannot read the draft prompt ({exc})") from None
        env = jinja2.Environment(  # plain text for a model: nothing to escape
            loader=jinja2.FileSystemLoader(str(folder)),
            undefined=jinja2.StrictUndefined,
            autoescape=False,  # noqa: S701 - the output is a prompt, never markup
            trim_blocks=True,
            lstrip_blocks=True,
        )
        try:
            template = env.get_template(TEMPLATE)
        except jinja2.TemplateError as exc:
            raise EditorialError(
                f"{path}: the draft prompt is not a valid template: {exc}"
            ) from None
        if not {"system", "user"} <= set(template.blocks):
            raise EditorialError(f"{path}: the draft prompt needs a system and a user block")
        module = template.make_module(vars=_context(None))
        version = str(getattr(module, "prompt_version", "") or "unversioned")
        digest = hashlib.sha256(source.encode("utf-8")).hexdigest()[:12]
        return cls(template, version, digest)

    def messages(self, signal: Signal) -> list[dict[str, str]]:
        """The chat messages for one signal (system, then user)."""
        context = self.template.new_context(_context(signal))
        try:
            parts = {
                name: "".join(self.template.blocks[name](context)).strip()
                for name in ("system", "user")
            }
        except jinja2.TemplateError as exc:
            raise EditorialError(f"{TEMPLATE}: cannot render the draft prompt: {exc}") from None
        return [
            {"role": "system", "content": parts["system"]},
            {"role": "user", "content": parts["user"]},
        ]


def _context(signal: Signal | None) -> dict[str, str]:
    """The only values the template may use."""
    if signal is None:
        return {"title": "", "source": "", "summary": ""}
    summary = signal.summary_text
    if len(summary) > MAX_SUMMARY:
        summary = summary[:MAX_SUMMARY].rsplit(" ", 1)[0] + " …"
    return {
        "title": signal.title,
        "source": signal.source_label or "unknown",
        "summary": summary or "(no summary)",
    }
