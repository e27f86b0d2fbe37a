"""Fitting the ranker: TF-IDF of title and summary, a ridge regression on the editor's scores.

The only module that imports scikit-learn (and numpy): imported by `signals rank --fit` and by
a refit that the rule in ranking.refit_due asks for, never at a command's start-up. No
network, no downloaded weights. The fitted model leaves as JSON arrays (ranking.Ranker).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import Ridge
from sklearn.model_selection import KFold, cross_val_predict

from newsletter.editorial.ranking import (
    FORMAT,
    KEEP_VERSIONS,
    MIN_SCORED,
    Ranker,
    signal_text,
    spearman,
)
from newsletter.errors import EditorialError
from newsletter.store import Store

TOKEN_PATTERN = r"(?u)\b\w\w+\b"  # noqa: S105 - scikit-learn's default, not a secret
MAX_TERMS = 20_000
FOLDS = 5
ALPHA = 1.0


@dataclass(frozen=True)
class Fitted:
    model: dict[str, Any]  # the JSON form Ranker reads
    scored: int
    spearman: float | None  # held-out: every signal predicted by a model that never saw it
    folds: int


def vectorizer() -> TfidfVectorizer:
    return TfidfVectorizer(
        lowercase=True,
        strip_accents="unicode",
        token_pattern=TOKEN_PATTERN,
        ngram_range=(1, 2),
        sublinear_tf=True,
        max_features=MAX_TERMS,
        dtype=np.float64,
    )


def fit(texts: list[str], scores: list[int], *, folds: int = FOLDS, seed: int = 0) -> Fitted:
    """Fit on every scored signal; the quality reported is the rank correlation between the
    editor's scores and out-of-fold predictions (K-fold: each signal is predicted by a model
    fitted without it). The vocabulary and idf use all texts (no score leaks through them)."""
    if len(texts) < MIN_SCORED:
        raise EditorialError(
            f"the ranker needs at least {MIN_SCORED} signals the editor has scored, there are"
            f" {len(texts)}: score more (`signals import`, `signals edit`, `signals accept`)"
        )
    if len(set(scores)) < 2:
        raise EditorialError("every scored signal has the same score: there is nothing to learn")
    tfidf = vectorizer()
    features = tfidf.fit_transform(texts)
    target = np.asarray(scores, dtype=np.float64)
    splits = KFold(n_splits=min(folds, len(texts)), shuffle=True, random_state=seed)
    held_out = cross_val_predict(Ridge(alpha=ALPHA), features, target, cv=splits)
    model = Ridge(alpha=ALPHA).fit(features, target)
    terms = [""] * len(tfidf.vocabulary_)
    for term, index in tfidf.vocabulary_.items():
        terms[index] = term
    exported = {
        "format": FORMAT,
        "analyzer": {
            "lowercase": True,
            "strip_accents": "unicode",
            "token_pattern": TOKEN_PATTERN,
            "ngram_range": [1, 2],
            "sublinear_tf": True,
            "norm": "l2",
        },
        "terms": terms,
        "idf": [float(v) for v in tfidf.idf_],
        "coef": [float(v) for v in model.coef_],
        "intercept": float(model.intercept_),
    }
    rho = spearman([float(v) for v in held_out], [float(v) for v in target])
    return Fitted(exported, len(texts), rho, splits.get_n_splits())


def fit_and_store(store: Store) -> Ranker:
    """Fit on the editor's scored signals and store the model as the next version."""
    rows = store.drafts.training_rows()
    fitted = fit(
        [signal_text(r["title"], r["summary_text"]) for r in rows],
        [int(r["signal_score"]) for r in rows],
    )
    with store.transaction():
        store.rankers.add(
            FORMAT,
            json.dumps(fitted.model, ensure_ascii=False, separators=(",", ":")),
            scored=fitted.scored,
            spearman=fitted.spearman,
        )
        store.rankers.prune(KEEP_VERSIONS)
    row = store.rankers.latest()
    assert row is not None
    return Ranker.from_row(row)
