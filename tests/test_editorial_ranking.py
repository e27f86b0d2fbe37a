"""The ranker learns what this editor scores highly, from data made with a known rule, and ranks
without scikit-learn: the stored model is JSON, scored in plain Python."""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from llm_stub import serve

from newsletter.editorial.ranking import Ranker, spearman
from newsletter.errors import EditorialError
from newsletter.models import FeedItem
from newsletter.store import Store

WEEK = "2026-W24"
GOOD = ["inference", "accelerator", "capex", "grid", "interconnection", "foundry"]
BAD = ["survey", "tutorial", "workshop", "toy", "leaderboard", "position"]
FILLER = [
    "model",
    "data",
    "method",
    "results",
    "paper",
    "propose",
    "approach",
    "learning",
    "network",
    "task",
    "performance",
    "we",
    "show",
    "study",
    "framework",
    "analysis",
    "training",
    "evaluation",
    "large",
    "language",
    "efficient",
    "novel",
]


def _text(rng: random.Random) -> tuple[str, str, int]:
    """A title and summary with a hidden editor's score: +9 a good topic word, -9 a bad one."""
    good, bad = rng.randint(0, 4), rng.randint(0, 4)
    words = [rng.choice(FILLER) for _ in range(60)]
    words += [rng.choice(GOOD) for _ in range(good * 2)] + [rng.choice(BAD) for _ in range(bad * 2)]
    rng.shuffle(words)
    score = max(0, min(100, 50 + 9 * good - 9 * bad + rng.randint(-4, 4)))
    return " ".join(words[:8]).capitalize(), " ".join(words[8:]) + ".", score


def _scored(store: Store, count: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    with store.transaction():
        for n in range(count):
            title, summary, score = _text(rng)
            store.signals.create(
                {
                    "title": f"{title} {n}",
                    "url": f"https://example.org/old/{seed}/{n}",
                    "summary_text": summary,
                    "signal_score": score,
                    "published": datetime(2026, 1, 5, tzinfo=UTC),
                }
            )


def _new(store: Store, count: int) -> dict[int, int]:
    """Unannotated signals of the week; returns their hidden scores by id."""
    rng, hidden = random.Random(99), {}
    for n in range(count):
        title, summary, score = _text(rng)
        item = FeedItem(
            title=f"{title} new {n}", url=f"https://example.org/new/{n}",
            published=datetime(2026, 6, 9, tzinfo=UTC) + timedelta(minutes=n),
            summary_text=summary, summary_html=f"<p>{summary}</p>", source_label="arXiv cs.LG",
        )  # fmt: skip
        store.signals.upsert_item(item, None, datetime(2026, 6, 14, tzinfo=UTC))
        hidden[store.signals.find(url=item.url)["id"]] = score  # type: ignore[index]
    return hidden


def test_the_ranker_puts_held_out_high_scorers_above_low_ones(run, store: Store) -> None:
    _scored(store, 240)
    hidden = _new(store, 80)
    fitted = run("signals", "rank", "--fit")
    assert fitted.exit_code == 0, fitted.output
    rho = float(re.search(r"held-out rank correlation (-?[\d.]+)", fitted.output)[1])  # type: ignore[index]
    assert rho > 0.5, fitted.output  # the honest, cross-validated figure, as printed
    assert "ranker v1: fitted on 240 scored signals" in fitted.output
    listed = run("signals", "list", "--unannotated", "--rank", "--week", WEEK)
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:1] == ["ID"])
    rows = [line.split() for line in lines[header + 1 : -1]]
    ids, predicted = [int(r[0]) for r in rows], [float(r[3]) for r in rows]
    assert predicted == sorted(predicted, reverse=True) and len(ids) == 80
    truth = [hidden[i] for i in ids]
    assert spearman(predicted, truth) > 0.5  # signals the model never saw
    top, bottom = truth[:20], truth[-20:]
    assert sum(top) / 20 > sum(bottom) / 20 + 15


def test_plain_python_scoring_matches_scikit_learn(store: Store) -> None:
    from sklearn.linear_model import Ridge

    from newsletter.editorial.fit import ALPHA, fit, vectorizer

    rng = random.Random(5)
    train = [_text(rng) for _ in range(120)]
    texts = [f"{t}\n{s}" for t, s, _ in train]
    scores = [score for _, _, score in train]
    fitted = fit(texts, scores)
    ranker = Ranker.from_row({"id": 1, "format": "tfidf-ridge/1", "scored": 120,
                              "spearman": fitted.spearman, "created_at": "now",
                              "model": json.dumps(fitted.model)})  # fmt: skip
    features = vectorizer()
    model = Ridge(alpha=ALPHA).fit(features.fit_transform(texts), scores)
    fresh = [f"{t}\n{s} Ünïcödé words" for t, s, _ in (_text(rng) for _ in range(40))]
    expected = model.predict(features.transform(fresh))
    for text, value in zip(fresh, expected, strict=True):
        assert ranker.predict_text(text) == pytest.approx(value, abs=1e-9)


def test_too_few_scores_is_a_clear_refusal(run, store: Store) -> None:
    _scored(store, 12)
    _new(store, 3)
    refused = run("signals", "rank", "--fit")
    assert refused.exit_code == 1
    assert "needs at least 20 signals the editor has scored, there are 12" in refused.output
    listing = run("signals", "list", "--unannotated", "--rank")
    assert listing.exit_code == 1
    assert "no ranker yet: it needs 20 signals the editor has scored, there are 12" in (
        listing.output
    )


def test_refits_itself_when_enough_new_scores_exist(run, store: Store, tmp_path: Path) -> None:
    _scored(store, 25)
    assert "ranker v1" in run("signals", "rank").output  # due: the first fit at 20 scores
    assert "ranker v1" in run("signals", "rank").output  # nothing new: the same model
    rng = random.Random(7)
    lines = []
    for n in range(10):
        title, summary, score = _text(rng)
        lines.append(json.dumps({"title": title, "url": f"https://example.org/import/{n}",
                                 "summary": summary, "signal_score": score}))  # fmt: skip
    (tmp_path / "scores.jsonl").write_text("\n".join(lines) + "\n")
    imported = run("signals", "import", str(tmp_path / "scores.jsonl"))
    assert imported.exit_code == 0, imported.output
    assert "refitted ranker v2: fitted on 35 scored signals" in imported.output
    off = run(
        "signals", "import", str(tmp_path / "scores.jsonl"),
        extra_env={"NEWSLETTER_RANK_REFIT_AFTER": "0"},
    )  # fmt: skip
    assert "refitted" not in off.output


def test_a_tampered_model_is_refused_not_run(run, store: Store) -> None:
    store.rankers.add("tfidf-ridge/1", '{"format": "tfidf-ridge/1", "terms": ["a"], "idf": [1]}',
                      scored=30, spearman=0.9)  # fmt: skip
    _new(store, 2)
    result = run("signals", "list", "--rank")
    assert result.exit_code == 1
    assert "ranker model v1 cannot be read" in result.output and "--fit" in result.output
    with pytest.raises(EditorialError, match="format 'pickle'"):
        Ranker.from_row({"id": 2, "format": "pickle", "scored": 1, "spearman": None,
                         "created_at": "", "model": "{}"})  # fmt: skip


def test_draft_top_asks_about_the_best_ones_only(run, store: Store) -> None:
    _scored(store, 120)
    hidden = _new(store, 30)
    run("signals", "rank", "--fit")
    with serve() as stub:
        env = {"NEWSLETTER_LLM_URL": stub.url, "NEWSLETTER_LLM_MODEL": "m"}
        result = run("signals", "draft", "--week", WEEK, "--top", "5", extra_env=env)
    assert result.exit_code == 0, result.output
    asked = {int(line.split()[1][1:]) for line in result.output.splitlines() if line[0] == "✓"}
    assert len(asked) == 5 and len(stub.requests) == 5
    best = sorted(hidden.values(), reverse=True)
    assert sum(hidden[i] for i in asked) / 5 > sum(best) / len(best)  # above the average


def test_collect_says_how_many_new_signals_rank_above_the_minimum(
    run, store: Store, tmp_path: Path
) -> None:
    _scored(store, 60)
    store.close()
    run("signals", "rank", "--fit")
    rng = random.Random(3)
    items = "".join(
        f"<item><title>{t} {n}</title><link>https://example.org/feed/{n}</link>"
        f"<description>{s}</description></item>"
        for n, (t, s, _) in enumerate(_text(rng) for _ in range(12))
    )
    feed = tmp_path / "feed.xml"
    feed.write_text(f'<?xml version="1.0"?><rss version="2.0"><channel><title>F</title>{items}'
                    "</channel></rss>")  # fmt: skip
    run("sources", "add", "wire", str(feed))
    result = run("collect", extra_env={"NEWSLETTER_MIN_SCORE": "50"})
    assert result.exit_code == 0, result.output
    match = re.search(r"(\d+) of 12 new signals rank above the dispatch minimum \(predicted"
                      r" score ≥ 50, ranker v1\)", result.output)  # fmt: skip
    assert match and 0 < int(match[1]) < 12, result.output


SNIPPET = """
import sys
from click.testing import CliRunner
from newsletter.cli import cli
for command in sys.argv[1:]:
    result = CliRunner().invoke(cli, command.split())
    assert result.exit_code == 0, (command, result.output)
    heavy = sorted({m.split('.')[0] for m in sys.modules} & {'sklearn', 'numpy', 'scipy'})
    print(command, 'HEAVY', heavy)
"""


def test_ranking_and_other_commands_never_import_scikit_learn(
    env: dict[str, str], store: Store, tmp_path: Path
) -> None:
    from newsletter.editorial.fit import fit_and_store

    _scored(store, 30)
    _new(store, 5)
    fit_and_store(store)
    store.sources.add("wire", str(tmp_path / "missing.xml"))
    store.sources.set_enabled("wire", False)
    store.close()
    commands = [
        "--help",
        "signals list --unannotated --rank",
        f"signals draft --dry-run --week {WEEK}",
        "signals show 1",
        "collect",
        "signals rank",  # no refit due: shows the stored model
        f"dispatch build --week {WEEK}",
    ]
    done = subprocess.run(
        [sys.executable, "-c", SNIPPET, *commands],
        env={**env, "PATH": ""}, cwd=tmp_path, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == len(commands) and all(line.endswith("HEAVY []") for line in lines), lines
