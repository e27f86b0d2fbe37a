"""A long summary shortened for a card (an email, a stream page): cut at a word with "…".

Pure, and only ever applied to a copy on its way to a template: the store keeps the full text.
A full arXiv abstract runs 20+ lines on a phone; the brief's own pages cut it near 500
characters.
"""

from __future__ import annotations

import html
import re
from dataclasses import replace

from newsletter.models import Signal
from newsletter.signals.sanitise import sanitise_html

ELLIPSIS = "…"
_TRAILING = " \t\n,;:.!?&-–—(['\"“‘/"  # what a cut never leaves dangling before the "…"
_WORD_GAP = re.compile(r"\s+")
_PIECES = re.compile(r"(<[^>]*>)")
_BLOCK_END = re.compile(r"^<(/(p|li|blockquote|pre)|br\s*/?)\s*>$", re.IGNORECASE)


def shorten_summary(signal: Signal, limit: int) -> Signal:
    """The signal with its summary (text and HTML alike) at most about `limit` characters, cut
    at a word boundary and ended with "…"; unchanged when it is short enough or `limit` is 0."""
    if limit <= 0 or len(signal.summary_text) <= limit:
        return signal
    return replace(
        signal,
        summary_text=cut_text(signal.summary_text, limit),
        summary_html=cut_html(signal.summary_html, limit),
    )


def cut_text(text: str, limit: int) -> str:
    """`text` in at most `limit` characters (the "…" included), ending on a whole word."""
    if limit <= 0 or len(text) <= limit:
        return text
    return _cut(text, limit - len(ELLIPSIS), hard=True) + ELLIPSIS


def _cut(text: str, budget: int, *, hard: bool) -> str:
    """The whole words of `text` that fit in `budget` characters. When not even the first
    fits: "" or, with `hard` (nothing else would be shown), the word cut inside."""
    window = text[: budget + 1]  # one more: a gap right after the budget ends a whole word
    gaps = [m.start() for m in _WORD_GAP.finditer(window) if m.start() > 0]
    if gaps:
        return text[: gaps[-1]].rstrip(_TRAILING)
    return text[:budget].rstrip(_TRAILING) if hard else ""


def cut_html(fragment: str, limit: int) -> str:
    """A sanitised fragment whose visible text is cut like `cut_text`: links and emphasis
    before the cut survive, and nh3 closes the tags the cut left open."""
    budget = limit - len(ELLIPSIS)
    out: list[str] = []
    used = 0
    for piece in filter(None, _PIECES.split(fragment)):
        if piece.startswith("<"):
            out.append(piece)
            used += 2 if _BLOCK_END.match(piece) else 0  # html_to_text: a blank line
            continue
        text = _WORD_GAP.sub(" ", html.unescape(piece))
        if used + len(text) <= budget:
            out.append(piece)
            used += len(text)
            continue
        shown = any(p.strip() and not p.startswith("<") for p in out)
        kept = _cut(text, max(budget - used, 0), hard=not shown)
        if kept:
            out.append(html.escape(kept, quote=False))
        break
    else:
        return fragment
    while out and out[-1].startswith("<") and not out[-1].startswith("</"):
        out.pop()  # a tag opened after the last word would hold only the ellipsis
    closing: list[str] = []
    while out and out[-1].startswith("</"):
        closing.insert(0, out.pop())
    if out:
        out[-1] = out[-1].rstrip(_TRAILING)
    return sanitise_html("".join(out) + ELLIPSIS + "".join(closing))
