"""Ranking new signals by what this editor scores highly, without scikit-learn at run time.

The fitted model (newsletter.editorial.fit, the only place scikit-learn is imported) is kept in
the database as plain JSON arrays: the TF-IDF vocabulary, its idf weights and the linear
model's coefficients. Scoring reproduces scikit-learn's analyzer and `predict` in plain Python,
so `signals list --rank` and `collect` start fast, and nothing stored is ever executed (a
pickle would run whatever a tampered file holds).
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from newsletter.errors import EditorialError
from newsletter.models import Signal
from newsletter.settings import Settings
from newsletter.store import Store

FORMAT = "tfidf-ridge/1"
#: fewer scored signals than this and the ranker refuses: there is nothing to learn from yet
MIN_SCORED = 20
KEEP_VERSIONS = 5


def signal_text(title: str, summary: str | None) -> str:
    """What the model reads of a signal: its title and plain-text summary."""
    return f"{title}\n{summary or ''}"


@dataclass(frozen=True)
class Ranker:
    """A fitted model, loaded: predicts the editor's score (0-100) of a signal."""

    version: int
    scored: int
    spearman: float | None
    created_at: str
    words: dict[str, int]  # unigram -> feature index
    grams: dict[tuple[str, ...], int]  # n-gram (n >= 2) as a tuple of tokens -> index
    idf: list[float]
    coef: list[float]
    intercept: float
    ngram: tuple[int, int]
    pattern: re.Pattern[str]
    lowercase: bool
    strip_accents: bool
    sublinear_tf: bool

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Ranker:
        version = row["id"]
        try:
            data = json.loads(row["model"])
            if row["format"] != FORMAT or data.get("format") != FORMAT:
                raise ValueError(f"format {row['format']!r}, this release reads {FORMAT}")
            terms, idf, coef = data["terms"], data["idf"], data["coef"]
            if not (len(terms) == len(idf) == len(coef)):
                raise ValueError("terms, idf and coef differ in length")
            if not all(isinstance(t, str) for t in terms):
                raise ValueError("a term is not text")
            numbers = [float(v) for v in (*idf, *coef, data["intercept"])]
            if not all(math.isfinite(v) for v in numbers):
                raise ValueError("a weight is not a finite number")
            analyzer = data["analyzer"]
            low, high = (int(n) for n in analyzer["ngram_range"])
            pattern = re.compile(str(analyzer["token_pattern"]))
        except (ValueError, KeyError, TypeError, re.error) as exc:
            raise EditorialError(
                f"ranker model v{version} cannot be read ({exc}); fit a new one with"
                " `newsletter signals rank --fit`"
            ) from None
        return cls(
            version=version,
            scored=row["scored"],
            spearman=row["spearman"],
            created_at=row["created_at"],
            words={term: i for i, term in enumerate(terms) if " " not in term},
            grams={tuple(t.split(" ")): i for i, t in enumerate(terms) if " " in t},
            idf=[float(v) for v in idf],
            coef=[float(v) for v in coef],
            intercept=float(data["intercept"]),
            ngram=(low, high),
            pattern=pattern,
            lowercase=bool(analyzer["lowercase"]),
            strip_accents=analyzer.get("strip_accents") == "unicode",
            sublinear_tf=bool(analyzer["sublinear_tf"]),
        )

    def predict_text(self, text: str) -> float:
        """scikit-learn's TfidfVectorizer + linear `predict`, term for term (unclipped)."""
        doc = text.lower() if self.lowercase else text
        if self.strip_accents:
            doc = _strip_accents(doc)
        tokens = self.pattern.findall(doc)
        low, high = self.ngram
        counts: Counter[Any] = Counter()  # None counts the misses, dropped below
        if low == 1:
            counts.update(map(self.words.get, tokens))
        for n in range(max(low, 2), high + 1):  # n-grams as tuples: no string joins
            counts.update(map(self.grams.get, zip(*(tokens[k:] for k in range(n)), strict=False)))
        counts.pop(None, None)
        dot = square = 0.0
        idf, coef, log = self.idf, self.coef, math.log
        for i, count in counts.items():
            weight = (1.0 + log(count) if self.sublinear_tf else count) * idf[i]
            dot += coef[i] * weight
            square += weight * weight
        return dot / math.sqrt(square) + self.intercept if square else self.intercept

    def predict(self, signal: Signal) -> float:
        """The predicted editor's score, 0-100."""
        value = self.predict_text(signal_text(signal.title, signal.summary_text))
        return min(100.0, max(0.0, value))

    def describe(self) -> str:
        quality = (
            f"held-out rank correlation {self.spearman:.2f}"
            if self.spearman is not None
            else "held-out rank correlation unknown"
        )
        return f"ranker v{self.version}: fitted on {self.scored} scored signals, {quality}"


def _strip_accents(text: str) -> str:
    """scikit-learn's strip_accents_unicode."""
    try:
        text.encode("ASCII", errors="strict")
        return text
    except UnicodeEncodeError:
        normalized = unicodedata.normalize("NFKD", text)
        return "".join(c for c in normalized if not unicodedata.combining(c))


def load_ranker(store: Store) -> Ranker | None:
    row = store.rankers.latest()
    return Ranker.from_row(row) if row else None


def require_ranker(store: Store) -> Ranker:
    ranker = load_ranker(store)
    if ranker is None:
        scored = store.drafts.training_count()
        need = (
            f"fit one with `newsletter signals rank --fit` ({scored} scored signals)"
            if scored >= MIN_SCORED
            else f"it needs {MIN_SCORED} signals the editor has scored, there are {scored}"
        )
        raise EditorialError(f"no ranker yet: {need}")
    return ranker


def rank(ranker: Ranker, signals: Sequence[Signal]) -> list[tuple[Signal, float]]:
    """Best first, by predicted score (then newest)."""
    scored = [(s, ranker.predict(s)) for s in signals]
    scored.sort(key=lambda pair: (pair[1], pair[0].published), reverse=True)
    return scored


def refit_due(store: Store, settings: Settings) -> bool:
    """The stated rule: refit once NEWSLETTER_RANK_REFIT_AFTER more signals have editorial
    scores than the current model was fitted on (the first fit: at MIN_SCORED)."""
    if settings.rank_refit_after <= 0:
        return False
    scored = store.drafts.training_count()
    latest = store.rankers.latest_info()
    if latest is None:
        return scored >= MIN_SCORED
    return scored - int(latest["scored"]) >= settings.rank_refit_after


def spearman(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Spearman's rank correlation (ties get their average rank); None when undefined."""
    if len(xs) != len(ys) or len(xs) < 2:
        return None
    rx, ry = _ranks(xs), _ranks(ys)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    vx = sum((a - mx) ** 2 for a in rx)
    vy = sum((b - my) ** 2 for b in ry)
    if not vx or not vy:
        return None
    return cov / math.sqrt(vx * vy)


def _ranks(values: Sequence[float]) -> list[float]:
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks
