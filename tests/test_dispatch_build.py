"""Building the week's dispatch: selection, order, sections, the editor's choices, freezing."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from newsletter.delivery.deliver import send_dispatch
from newsletter.delivery.senders import MemorySender
from newsletter.demo import load_sample
from newsletter.dispatch.build import approve, build_dispatch, choose, edit_text, load_dispatch
from newsletter.errors import DispatchError
from newsletter.models import Dispatch
from newsletter.readers.subscriptions import add_subscriber
from newsletter.settings import Settings
from newsletter.store import Store
from newsletter.weeks import Week

SAMPLE = Path(__file__).parent.parent / "newsletter" / "sample"
WEEK = Week(2026, 24)


@pytest.fixture
def loaded(store: Store) -> Store:
    load_sample(store, now=datetime(2026, 6, 14, tzinfo=UTC))
    return store


def _titles(dispatch: Dispatch) -> list[str]:
    return [s.title for s in dispatch.signals]


def _id(store: Store, needle: str) -> int:
    return next(s.id for s in store.signals.list() if needle in s.title)


def test_the_lead_then_strongest_first_within_configured_section_order(
    loaded: Store, settings: Settings
) -> None:
    custom = settings.replace(sections=("Energy", "AI"), select_unscored=True)
    dispatch = build_dispatch(loaded, custom, WEEK)
    # the week's strongest signal (Markets, 82) opens the dispatch whatever its section; then
    # the configured sections, the others (Markets) after them alphabetically
    assert [s.title for s in dispatch.sections] == ["Lead story", "Energy", "AI", "Markets"]
    assert dispatch.sections[0].lead and dispatch.signals[0].signal_score == 82
    assert dispatch.signals[0].title.startswith("Chipmaker guides capex")
    assert [s.signal_score for s in dispatch.sections[1].signals] == [68, 55]
    # unscored signals come last (tie-breaks between equal scores: test_select)
    ai = dispatch.sections[2].signals
    assert (ai[0].signal_score, ai[0].structural_impact) == (75, 60)
    assert ai[-1].signal_score is None
    # the lead stays first when the draft is read back, and in the subject
    again = load_dispatch(loaded, custom, WEEK)
    assert again is not None and again.sections == dispatch.sections
    assert dispatch.subject.startswith("Chipmaker guides capex")


def test_unscored_signals_stay_out_unless_pinned(loaded: Store, settings: Settings) -> None:
    dispatch = build_dispatch(loaded, settings, WEEK)
    assert len(dispatch.signals) == 4
    assert all(s.signal_score is not None for s in dispatch.signals)
    bare = _id(loaded, "Sparse Mixture-of-Experts")
    pinned = choose(loaded, settings, WEEK, [bare], pin=True)
    assert bare in [s.id for s in pinned.signals] and len(pinned.signals) == 5


def test_minimum_score_and_limit(loaded: Store, settings: Settings) -> None:
    dispatch = build_dispatch(loaded, settings.replace(min_score=60, max_signals=3), WEEK)
    assert [s.signal_score for s in dispatch.signals] == [82, 75, 68]  # the lead, then AI
    assert all((s.signal_score or 0) >= 60 for s in dispatch.signals)
    # 55 and the unscored ones are under the minimum
    assert "Utility files for 2 GW" not in " ".join(_titles(dispatch))
    assert len(dispatch.signals) == 3


def test_pins_drops_and_texts_survive_a_rebuild(loaded: Store, settings: Settings) -> None:
    strict = settings.replace(min_score=70)
    build_dispatch(loaded, strict, WEEK)
    chip = _id(loaded, "Chipmaker")
    battery = _id(loaded, "battery storage")  # score 55: below the minimum
    choose(loaded, strict, WEEK, [chip], drop=True)
    choose(loaded, strict, WEEK, [battery], pin=True)
    edit_text(loaded, strict, WEEK, subject="Our pick of the week", note="Hello *readers*.")
    rebuilt = build_dispatch(loaded, strict, WEEK)
    ids = [s.id for s in rebuilt.signals]
    assert chip not in ids and battery in ids
    assert rebuilt.subject == "Our pick of the week"
    assert rebuilt.note == "Hello *readers*."
    # an empty subject goes back to the generated one: the strongest signal leads, not a pin
    back = edit_text(loaded, strict, WEEK, subject="")
    assert back.subject.startswith("Post-training is (Massive) Supervised Learning + ")
    # undo brings the dropped signal back and releases the pin
    choose(loaded, strict, WEEK, [chip], drop=True, undo=True)
    undone = choose(loaded, strict, WEEK, [battery], pin=True, undo=True)
    assert chip in [s.id for s in undone.signals] and battery not in [s.id for s in undone.signals]


def test_pinning_a_dropped_signal_brings_it_back(loaded: Store, settings: Settings) -> None:
    build_dispatch(loaded, settings, WEEK)
    chip = _id(loaded, "Chipmaker")
    choose(loaded, settings, WEEK, [chip], drop=True)
    again = choose(loaded, settings, WEEK, [chip], pin=True)
    assert chip in [s.id for s in again.signals]


def test_unknown_signal_and_bad_text_change_nothing(loaded: Store, settings: Settings) -> None:
    before = build_dispatch(loaded, settings, WEEK)
    with pytest.raises(DispatchError, match="no signal with id 9999"):
        choose(loaded, settings, WEEK, [_id(loaded, "Chipmaker"), 9999], drop=True)
    with pytest.raises(DispatchError, match="subject: must be one line"):
        edit_text(loaded, settings, WEEK, subject="Hi\r\nBcc: x@example.org")
    with pytest.raises(DispatchError, match="preheader: at most"):
        edit_text(loaded, settings, WEEK, preheader="x" * 300)
    after = load_dispatch(loaded, settings, WEEK)
    assert after is not None
    assert (after.subject, _titles(after)) == (before.subject, _titles(before))


def test_editing_an_approved_draft_asks_for_approval_again(
    loaded: Store, settings: Settings
) -> None:
    build_dispatch(loaded, settings, WEEK)
    assert approve(loaded, settings, WEEK).status == "approved"
    assert edit_text(loaded, settings, WEEK, preheader="New preview text").status == "draft"


def test_sent_dispatch_is_frozen_and_its_signals_are_not_sent_again(
    loaded: Store, settings: Settings
) -> None:
    add_subscriber(loaded, "one@example.org", confirmed=True)
    build_dispatch(loaded, settings, WEEK)
    approve(loaded, settings, WEEK)
    send_dispatch(loaded, settings, MemorySender(), WEEK)
    sent = load_dispatch(loaded, settings, WEEK)
    assert sent is not None and sent.status == "sent" and sent.html and sent.text
    chip = _id(loaded, "Chipmaker")
    for change in (
        lambda: choose(loaded, settings, WEEK, [chip], drop=True),
        lambda: edit_text(loaded, settings, WEEK, subject="Changed"),
        lambda: build_dispatch(loaded, settings, WEEK),
    ):
        with pytest.raises(DispatchError, match="frozen"):
            change()
    frozen = load_dispatch(loaded, settings, WEEK)
    assert frozen is not None and (frozen.html, frozen.text) == (sent.html, sent.text)
    # next week: even a pinned signal that went out before is not sent twice
    later = choose(loaded, settings, Week(2026, 25), [chip], pin=True)
    assert later.signals == ()


def test_quiet_weeks_leave_no_gap_in_issue_numbers(loaded: Store, settings: Settings) -> None:
    empty = build_dispatch(loaded, settings, Week(2026, 23))
    assert empty.signals == ()
    first = build_dispatch(loaded, settings, WEEK)
    assert first.issue_number == 1
    assert build_dispatch(loaded, settings, Week(2026, 25)).signals == ()
    # a week that gains a signal takes the next number
    chip = _id(loaded, "Chipmaker")
    choose(loaded, settings, WEEK, [chip], drop=True)
    gained = choose(loaded, settings, Week(2026, 25), [chip], pin=True)
    assert gained.issue_number == 2


def test_cli_empty_week_is_not_an_error(run) -> None:
    empty = run("dispatch", "build", "--week", "2026-W02")
    assert empty.exit_code == 0
    assert "no eligible signals" in empty.output and "nothing will be sent" in empty.output


def test_cli_editor_loop(run, tmp_path: Path, loaded: Store) -> None:
    chip = _id(loaded, "Chipmaker")
    loaded.close()
    built = run("dispatch", "build", "--week", "2026-W24")
    assert built.exit_code == 0 and "4 signals in 3 sections" in built.output
    dropped = run("dispatch", "drop", str(chip), "--week", "2026-W24")
    assert dropped.exit_code == 0 and "3 signals" in dropped.output
    note = tmp_path / "note.md"
    note.write_text("A **quiet** week.\n\n- one\n- two\n", encoding="utf-8")
    result = run(
        "dispatch", "set", "--subject", "Six things", "--note-file", str(note),
        "--week", "2026-W24",
    )  # fmt: skip
    assert result.exit_code == 0 and "subject:   Six things" in result.output
    shown = run("dispatch", "show", "--week", "2026-W24")
    assert "Six things" in shown.output and "A **quiet** week." in shown.output
    assert f"dropped: {chip}" in shown.output
    missing = run("dispatch", "pin", "424242", "--week", "2026-W24")
    assert missing.exit_code == 1
    assert missing.output.strip().splitlines() == ["Error: no signal with id 424242"]
    nothing = run("dispatch", "set", "--week", "2026-W24")
    assert nothing.exit_code == 2 and "nothing to set" in nothing.output
