"""The editor's annotations: every seed field, validation that names file, line and field,
all-or-nothing imports, dry runs, export that round-trips, and `signals edit`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from newsletter.errors import AnnotationError
from newsletter.signals.annotations import import_annotations
from newsletter.store import Store

HERE = Path(__file__).parent / "fixtures" / "annotations"
SEED = HERE / "seed-000-post-training.md"
NEW = {"url": "https://example.org/new", "title": "New signal", "published": "2026-06-10"}


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_seed_annotation_creates_a_signal_with_every_field(store: Store, tmp_path: Path) -> None:
    seed = _write(
        tmp_path,
        "seed.md",
        SEED.read_text().replace(
            "---\nurl:",
            "---\ntitle: Post-training is (Massive) Supervised Learning\nsource: arXiv cs.LG\n"
            "published: 2026-06-09T04:00:00Z\nurl:",
            1,
        ),
    )
    report = import_annotations(store, [seed])
    assert len(report.created) == 1
    signal = store.signals.list()[0]
    assert signal.arxiv_id == "2606.07527" and signal.source_label == "arXiv cs.LG"
    assert (signal.signal_score, signal.horizon, signal.category) == (75, "medium term", "AI")
    assert (signal.editorial_confidence, signal.structural_impact) == (90, 60)
    assert signal.winners[1] == "GPU manufacturers" and len(signal.losers) == 2
    assert signal.why_now and signal.why_important and signal.what_changes
    assert signal.effects_direct and signal.effects_second and signal.effects_third
    assert signal.published.isoformat() == "2026-06-09T04:00:00+00:00"


MD = "---\nurl: https://e.org/a\n"  # line 2 of a Markdown file; the next field is on line 3
SCORE = "must be a whole number from 0 to 100"


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("s.md", MD + "title: A\nsignal_score: 120\n---\n", f"s.md:4: signal_score: {SCORE}"),
        ("h.md", MD + "horizon: someday\n---\n", "h.md:3: horizon: must be short, medium or long"),
        ("u.md", MD + "why_nwo: soon\n---\n", "u.md:3: why_nwo: unknown field (did you mean"),
        ("d.md", MD + "published: last tuesday\n---\n", "d.md:3: published: not a date"),
        ("t.md", MD + "winners: GPU makers\n---\n", "t.md:3: winners: expected a list of short"),
        ("w.md", MD + "title: [a, b]\n---\n", "w.md:3: title: expected text, got list"),
        ("x.md", MD + "arxiv_id: 2606.10000\n---\n", "x.md:3: arxiv_id: write it in quotes"),
        ("y.md", MD + "title: 'open\n---\n", "y.md:"),
        ("n.md", "no front matter\n", "n.md:1: expected front matter"),
        ("j.jsonl", '{"url": "https://e.org/a"}\n{"url": "https://e.org/b", "signal_score": "x"}',
         "j.jsonl:2: signal_score: expected a whole number"),
        ("k.json", '[{"url": "https://e.org/a", "editorial_confidence": -1}]',
         f"k.json:1: editorial_confidence: {SCORE}"),
        ("l.json", '{"url": "https://e.org/a",\n "title": }', "l.json:2: invalid JSON"),
        ("m.jsonl", '{"title": "no key"}\n', "m.jsonl:1: url: every annotation needs a url, guid"),
    ],
)  # fmt: skip
def test_invalid_annotation_names_file_line_and_field(
    store: Store, tmp_path: Path, name: str, text: str, message: str
) -> None:
    path = _write(tmp_path, name, text)
    with pytest.raises(AnnotationError) as caught:
        import_annotations(store, [path])
    assert str(caught.value).startswith(str(tmp_path / message.split(":")[0]))
    assert message in str(caught.value)


def test_json_errors_name_the_line_of_the_field(store: Store, tmp_path: Path) -> None:
    records = [{"url": "https://e.org/a", "title": "A"}, {"url": "https://e.org/b", "horizon": "?"}]
    path = _write(tmp_path, "list.json", json.dumps(records, indent=2))
    with pytest.raises(AnnotationError) as caught:
        import_annotations(store, [path])
    assert str(caught.value).startswith(f"{path}:8: horizon: must be short, medium or long")


def test_one_bad_record_anywhere_and_nothing_is_written(store: Store, tmp_path: Path) -> None:
    good = _write(tmp_path, "good.json", json.dumps(NEW))
    with pytest.raises(AnnotationError, match=r"bad-horizon\.jsonl:2: horizon"):
        import_annotations(store, [good, HERE / "bad-horizon.jsonl"])
    assert store.signals.count() == 0
    new_only = _write(tmp_path, "new.jsonl", json.dumps({"url": "https://e.org/x"}) + "\n")
    with pytest.raises(AnnotationError, match="needs a title and a url"):
        import_annotations(store, [good, new_only])
    assert store.signals.count() == 0


def test_dry_run_reports_the_changes_and_writes_nothing(store: Store, tmp_path: Path) -> None:
    import_annotations(store, [_write(tmp_path, "a.json", json.dumps(NEW))])
    change = _write(
        tmp_path,
        "b.jsonl",
        json.dumps({"url": NEW["url"], "signal_score": 80, "title": "New signal"}),
    )
    report = import_annotations(store, [change], dry_run=True)
    assert report.updated == [f"{change}:1"]
    assert report.changes[0].fields == ("signal_score",)
    assert store.signals.list()[0].signal_score is None


def test_export_round_trips_losslessly(run, store: Store, tmp_path: Path) -> None:
    seed = SEED.read_text().replace("---\nurl:", "---\ntitle: Seed\nurl:", 1)
    notes = seed.rstrip() + "\n\nCheck the RL appendix.\n"
    import_annotations(
        store,
        [
            _write(tmp_path, "seed.md", notes),
            _write(
                tmp_path,
                "n.json",
                json.dumps({**NEW, "summary": "Line one.\n\nLine two.", "notes": "Call them."}),
            ),
        ],
    )
    store.close()
    md = run("signals", "export", "--format", "md", "--output", "out")
    assert md.exit_code == 0, md.output
    jsonl = run("signals", "export", "--output", "all.jsonl")
    assert jsonl.exit_code == 0
    for target in ("out", "all.jsonl"):
        again = run("signals", "import", target)
        assert again.exit_code == 0, again.output
        assert "0 created, 0 updated, 2 unchanged" in again.output
    assert "summary: Check the RL appendix." in (tmp_path / "out" / "2606.07527.md").read_text()
    exported = (tmp_path / "out" / "signal-2.md").read_text()
    assert "summary: |-\n  Line one.\n\n  Line two.\n" in exported
    assert exported.endswith("---\n\nCall them.\n")
    assert run("signals", "export", "--format", "md", "--output", "out2").exit_code == 0
    assert (tmp_path / "out2" / "signal-2.md").read_text() == exported


def test_edit_opens_the_form_and_imports_it_back(run, tmp_path: Path) -> None:
    _write(tmp_path, "n.json", json.dumps({**NEW, "signal_score": 40, "why_now": "Old."}))
    assert run("signals", "import", "n.json").exit_code == 0
    editor = _write(
        tmp_path,
        "editor.py",
        "import sys, pathlib\np = pathlib.Path(sys.argv[1])\n"
        "t = p.read_text().replace('signal_score: 40', 'signal_score: 85')\n"
        "kept = [line for line in t.splitlines() if not line.startswith('why_now')]\n"
        "p.write_text('\\n'.join(kept) + '\\n')\n",
    )
    edited = run("signals", "edit", "1", extra_env={"EDITOR": f"{sys.executable} {editor}"})
    assert edited.exit_code == 0, edited.output
    assert "updated: #1" in edited.output
    shown = run("signals", "show", "1").output
    assert "signal_score: 85" in shown and "why_now" not in shown

    breaker = _write(
        tmp_path,
        "breaker.py",
        "import sys, pathlib\np = pathlib.Path(sys.argv[1])\n"
        "p.write_text(p.read_text().replace('signal_score: 85', 'signal_score: 185'))\n",
    )
    refused = run("signals", "edit", "1", extra_env={"EDITOR": f"{sys.executable} {breaker}"})
    assert refused.exit_code == 1
    assert "signal_score: must be a whole number from 0 to 100" in refused.output
    assert "signal_score: 85" in run("signals", "show", "1").output


def test_list_filters_and_show_errors(run, tmp_path: Path) -> None:
    records = [
        {**NEW, "category": "AI", "signal_score": 70},
        {"url": "https://e.org/old", "title": "Old one", "published": "2026-05-01"},
    ]
    _write(tmp_path, "r.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    assert run("signals", "import", "r.jsonl").exit_code == 0
    week = run("signals", "list", "--week", "2026-W24")
    assert "New signal" in week.output and "Old one" not in week.output
    assert "Old one" in run("signals", "list", "--unannotated").output
    assert "New signal" not in run("signals", "list", "--unannotated").output
    assert "no signals match" in run("signals", "list", "--category", "energy").output
    missing = run("signals", "show", "99")
    assert missing.exit_code == 1 and "no signal with id 99" in missing.output
    assert run("signals", "list", "--week", "2026-W60").exit_code == 2


def test_an_arxiv_id_is_enough_to_create_with_a_title(store: Store, tmp_path: Path) -> None:
    path = _write(tmp_path, "a.md", "---\narxiv_id: '2606.10000v2'\ntitle: A paper\n---\nNotes.\n")
    assert len(import_annotations(store, [path]).created) == 1
    (signal,) = store.signals.list()
    assert (signal.url, signal.arxiv_id) == ("https://arxiv.org/abs/2606.10000", "2606.10000")
    assert signal.summary_text == "Notes."


# --- hostile files: bounded parsing, clear errors, nothing written ---------------------------

LAUGHS = "---\nurl: https://e.org/a\n" + "".join(
    f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9 if i else ['lol'] * 9)}]\n" for i in range(9)
) + "why_now: *l8\n---\n"  # fmt: skip


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("bomb.md", LAUGHS, "bomb.md:3: invalid front matter: a YAML anchor (&) is not allowed"),
        ("alias.md", "---\nurl: &u https://e.org/a\ntitle: *u\n---\n", "a YAML anchor"),
        ("merge.md", "---\nurl: https://e.org/a\n<<: *x\n---\n", "a YAML alias (*)"),
        ("inf.json", '{"url": "https://e.org/a", "signal_score": 1e400}',
         "signal_score: must be a whole number from 0 to 100, got a number too large to use"),
        ("nan.json", '{"url": "https://e.org/a", "signal_score": NaN}', "NaN is not a number"),
        ("neg.jsonl", '{"url": "https://e.org/a", "structural_impact": -Infinity}\n',
         "neg.jsonl:1: invalid JSON (-Infinity is not a number JSON allows)"),
        ("big.json", '{"url": "https://e.org/a", "signal_score": 1' + "0" * 5000 + "}",
         "invalid JSON (a 5001-digit number)"),
        ("big.md", "---\nurl: https://e.org/a\nsignal_score: 1" + "0" * 5000 + "\n---\n",
         "big.md:2: invalid front matter: a value too large"),
        ("float.md", "---\nurl: https://e.org/a\nsignal_score: .inf\n---\n",
         "signal_score: must be a whole number from 0 to 100, got a number too large to use"),
        ("half.json", '{"url": "https://e.org/a", "signal_score": 50.5}', "got 50.5"),
        ("deep.json", "[" * 100_000 + "]" * 100_000, "invalid JSON"),
        ("list.json", json.dumps({"url": "https://e.org/a", "winners": ["w"] * 200_000}),
         "winners: at most 50 items, got 200000"),
        ("list.md", "---\nurl: https://e.org/a\nwinners: [" + "w, " * 70_000 + "w]\n---\n",
         "front matter over 128 KB"),
        ("deep.md", "---\nurl: https://e.org/a\nwinners: " + "[" * 9_000 + "]" * 9_000 + "\n---\n",
         "deep.md:2: invalid front matter: a value too large"),
        ("phrase.json", json.dumps({"url": "https://e.org/a", "losers": ["x" * 301]}),
         "losers: at most 300 characters, got 301"),
        ("title.json", json.dumps({"url": "https://e.org/a", "title": "t" * 501}),
         "title: at most 500 characters, got 501"),
        ("why.json", json.dumps({"url": "https://e.org/a", "why_now": "w" * 10_001}),
         "why_now: at most 10000 characters, got 10001"),
    ],
)  # fmt: skip
def test_hostile_annotation_files_are_refused_with_a_clear_error(
    store: Store, tmp_path: Path, name: str, text: str, message: str
) -> None:
    path = _write(tmp_path, name, text)
    with pytest.raises(AnnotationError) as caught:
        import_annotations(store, [path])
    assert message in str(caught.value)
    assert len(str(caught.value)) < 300 + len(str(path))  # nothing expanded is shown
    assert store.signals.count() == 0


@pytest.mark.parametrize("field", ["horizon", "published", "url", "arxiv_id", "signal_score"])
def test_an_error_never_shows_a_huge_value(store: Store, tmp_path: Path, field: str) -> None:
    path = _write(
        tmp_path, "huge.json", json.dumps({"url": "https://e.org/a", field: "v" * 1_000_000})
    )
    with pytest.raises(AnnotationError) as caught:
        import_annotations(store, [path])
    assert field in str(caught.value) and len(str(caught.value)) < 300 + len(str(path))
