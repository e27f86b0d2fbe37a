"""Readable, stable slugs for signal pages: the title's words plus a short id.

The short id comes from the signal's canonical URL (its identity), so the same signal gets the
same slug in any database, and a changed title changes only the words in front of it.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

MAX_WORDS_LENGTH = 60
SHORT_ID_LENGTH = 8
_NOT_WORD = re.compile(r"[^a-z0-9]+")
#: a slug as the site writes it: lowercase words joined by "-" and a hexadecimal short id
SLUG_PATTERN = re.compile(r"^(?:[a-z0-9]+-)*[0-9a-f]{8,64}$")


def words(title: str) -> str:
    """The title as ASCII words joined by "-", cut at a word boundary; "signal" when none."""
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    joined = _NOT_WORD.sub("-", ascii_title.lower()).strip("-")
    if len(joined) > MAX_WORDS_LENGTH:
        cut = joined[: MAX_WORDS_LENGTH + 1]
        joined = cut.rsplit("-", 1)[0] if "-" in cut else cut[:MAX_WORDS_LENGTH]
    return joined or "signal"


def short_id(url: str, length: int = SHORT_ID_LENGTH) -> str:
    return hashlib.sha256(url.encode("utf-8")).hexdigest()[:length]


def make_slug(title: str, url: str, length: int = SHORT_ID_LENGTH) -> str:
    """`post-training-is-massive-supervised-learning-1a2b3c4d`; a longer id on a collision."""
    return f"{words(title)}-{short_id(url, length)}"


def looks_like_slug(text: str) -> bool:
    return len(text) <= 140 and bool(SLUG_PATTERN.match(text))
