"""An import reports every bad field of every file at once, and still writes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from newsletter.signals.annotations import InvalidAnnotations, import_annotations
from newsletter.store import Store

FRONT = """---
url: https://arxiv.org/abs/2606.07527
title: A paper
signal_score: 120
horizon: someday
winners: GPU makers
---
Notes.
"""


def _files(tmp_path: Path) -> list[Path]:
    md = tmp_path / "a.md"
    md.write_text(FRONT)
    jsonl = tmp_path / "b.jsonl"
    jsonl.write_text(
        json.dumps({"url": "https://e.org/1", "title": "One", "editorial_confidence": -3})
        + "\n{not json\n"
        + json.dumps({"url": "https://e.org/3", "titel": "Three"})
        + "\n"
    )
    good = tmp_path / "c.json"
    good.write_text(json.dumps({"url": "https://e.org/ok", "title": "Fine", "signal_score": 50}))
    return [md, jsonl, good]


def test_every_problem_of_every_file_in_one_error(store: Store, tmp_path: Path) -> None:
    paths = _files(tmp_path)
    with pytest.raises(InvalidAnnotations) as caught:
        import_annotations(store, paths)
    problems = caught.value.problems
    assert [p.removeprefix(str(tmp_path) + "/").split(": ")[:2] for p in problems] == [
        ["a.md:4", "signal_score"],
        ["a.md:5", "horizon"],
        ["a.md:6", "winners"],
        ["b.jsonl:1", "editorial_confidence"],
        ["b.jsonl:2", "invalid JSON (Expecting property name enclosed in double quotes)"],
        ["b.jsonl:3", "titel"],
    ]
    assert "did you mean 'title'?" in problems[-1]
    assert str(caught.value).startswith("6 problems (nothing was written):\n  ")
    assert store.signals.count() == 0


def test_records_that_cannot_apply_are_listed_too(store: Store, tmp_path: Path) -> None:
    first = tmp_path / "new.jsonl"
    first.write_text(
        json.dumps({"url": "https://e.org/no-title"})
        + "\n"
        + json.dumps({"url": "https://e.org/fine", "title": "Fine"})
        + "\n"
        + json.dumps({"guid": "nowhere"})
        + "\n"
    )
    with pytest.raises(InvalidAnnotations) as caught:
        import_annotations(store, [first])
    assert len(caught.value.problems) == 2
    assert all("a new one needs a title and a url" in p for p in caught.value.problems)
    assert store.signals.count() == 0  # the valid record in between was rolled back


def test_the_cli_prints_every_problem_and_exits_1(run, tmp_path: Path) -> None:
    result = run("signals", "import", *map(str, _files(tmp_path)))
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert lines[0] == "Error: 6 problems (nothing was written):"
    assert len(lines) == 7 and all(line.startswith(f"  {tmp_path}/") for line in lines[1:])
    assert "no signals match" in run("signals", "list").output
