"""`newsletter subscribers ...` through the real CLI on a real database file."""

from __future__ import annotations

import csv
import io
from email import message_from_bytes, policy
from pathlib import Path

from newsletter.settings import Settings
from newsletter.store import Store


def outbox_mails(settings: Settings) -> list:
    return [
        message_from_bytes(p.read_bytes(), policy=policy.default)
        for p in sorted(settings.outbox.rglob("*.eml"))
    ]


def statuses(settings: Settings) -> dict[str, str]:
    store = Store.open(settings.db)
    try:
        return {row["email"]: row["status"] for row in store.subscribers.list()}
    finally:
        store.close()


def test_add_is_double_opt_in_and_mails_a_confirmation(run, settings: Settings) -> None:
    result = run("subscribers", "add", "ada@example.org", "--name", "Ada")
    assert result.exit_code == 0, result.output
    assert "ada@example.org: pending (added)" in result.output
    [mail] = outbox_mails(settings)
    assert "/confirm/" in mail.get_body(preferencelist=("plain",)).get_content()
    confirmed = run("subscribers", "add", "grace@example.org", "--confirmed")
    assert "grace@example.org: active (added)" in confirmed.output
    assert len(outbox_mails(settings)) == 1


def test_add_refuses_a_bad_address_in_one_line(run) -> None:
    result = run("subscribers", "add", "not-an-address")
    assert result.exit_code == 1
    assert result.output.startswith("Error: invalid address 'not-an-address'")
    assert len(result.output.strip().splitlines()) == 1


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)
    return path


def test_import_reports_each_outcome_and_never_resubscribes(
    run, settings: Settings, tmp_path: Path
) -> None:
    run("subscribers", "add", "left@example.org", "--confirmed")
    run("subscribers", "remove", "left@example.org")
    run("subscribers", "add", "known@example.org", "--confirmed")
    run("subscribers", "add", "gone@example.org", "--confirmed")
    run("subscribers", "erase", "gone@example.org", "--yes")
    file = write_csv(
        tmp_path / "people.csv",
        [
            ["Address", "Full name"],
            ["new@example.org", "New Person"],
            ["NEW@example.org", "Again"],
            ["left@example.org", "Left"],
            ["gone@example.org", ""],
            ["known@example.org", "Known Name"],
            ["nonsense", "X"],
            ["", "Y"],
        ],
    )
    args = ["subscribers", "import", str(file), "--email-column", "Address"]
    dry = run(*args, "--name-column", "Full name", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "dry run, would have: 1 added, 1 updated, 3 skipped, 2 invalid" in dry.output
    assert "new@example.org" not in statuses(settings)

    real = run(*args, "--name-column", "Full name", "--confirmed")
    assert real.exit_code == 0, real.output
    assert "1 added, 1 updated, 3 skipped, 2 invalid" in real.output
    assert "line 3: skipped new@example.org: duplicate of line 2" in real.output
    assert "line 4: skipped left@example.org: unsubscribed: never re-added" in real.output
    assert "line 5: skipped gone@example.org: erased on request" in real.output
    assert "line 8: invalid '': no address" in real.output
    found = statuses(settings)
    assert found["new@example.org"] == "active"
    assert found["left@example.org"] == "unsubscribed"
    assert "gone@example.org" not in found


def test_import_without_confirmed_adds_pending_and_mails_them(
    run, settings: Settings, tmp_path: Path
) -> None:
    file = write_csv(tmp_path / "p.csv", [["email"], ["a@example.org"], ["b@example.org"]])
    result = run("subscribers", "import", str(file))
    assert "2 added" in result.output and "2 confirmation mail(s) sent" in result.output
    assert statuses(settings) == {"a@example.org": "pending", "b@example.org": "pending"}
    assert len(outbox_mails(settings)) == 2


def test_import_of_a_file_without_the_column_changes_nothing(
    run, settings: Settings, tmp_path: Path
) -> None:
    file = write_csv(tmp_path / "p.csv", [["mail"], ["a@example.org"]])
    result = run("subscribers", "import", str(file))
    assert result.exit_code == 1
    assert "no column 'email' (columns: mail)" in result.output
    assert statuses(settings) == {}


def test_export_is_csv_with_consent_and_inert_formulas(run, tmp_path: Path) -> None:
    run("subscribers", "add", "a@example.org", "--name", "=HYPERLINK(1)", "--confirmed")
    run("subscribers", "add", "b@example.org")
    result = run("subscribers", "export", "--status", "active")
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert [r["email"] for r in rows] == ["a@example.org"]
    assert rows[0]["name"] == "'=HYPERLINK(1)"
    out = tmp_path / "all.csv"
    run("subscribers", "export", "--output", str(out))
    assert len(list(csv.DictReader(out.open()))) == 2


def test_list_filters_and_counts(run) -> None:
    run("subscribers", "add", "ada@example.org", "--name", "Ada", "--confirmed")
    run("subscribers", "add", "bob@example.org")
    result = run("subscribers", "list", "--status", "active")
    assert "ada@example.org" in result.output and "bob@example.org" not in result.output
    assert "1 shown; 1 pending, 1 active" in result.output
    searched = run("subscribers", "list", "--search", "BOB")
    assert "bob@example.org" in searched.output and "ada@" not in searched.output


def test_show_remove_and_erase(run, settings: Settings) -> None:
    run("subscribers", "add", "ada@example.org", "--name", "Ada", "--confirmed")
    removed = run("subscribers", "remove", "ada@example.org")
    assert "unsubscribed" in removed.output
    shown = run("subscribers", "show", "ada@example.org")
    assert "status:          unsubscribed" in shown.output
    assert "subscriber.active" in shown.output and "subscriber.unsubscribed" in shown.output
    again = run("subscribers", "add", "ada@example.org", "--confirmed")
    assert again.exit_code == 1 and "not re-subscribed" in again.output

    erased = run("subscribers", "erase", "ada@example.org", "--yes")
    assert erased.exit_code == 0
    store = Store.open(settings.db)
    try:
        assert store.subscribers.get_by_email("ada@example.org") is None
        leftovers = store.db.execute(
            "SELECT count(*) FROM events WHERE detail LIKE '%ada%' OR subject_type = 'subscriber'"
        ).fetchone()[0]
        assert leftovers == 0
        assert store.subscribers.is_erased("ada@example.org")
    finally:
        store.close()
    assert run("subscribers", "show", "ada@example.org").exit_code == 1
    assert run("subscribers", "add", "ada@example.org", "--confirmed").exit_code == 1


def test_erase_asks_first(run, settings: Settings) -> None:
    run("subscribers", "add", "ada@example.org", "--confirmed")
    result = run("subscribers", "erase", "ada@example.org", input="n\n")
    assert result.exit_code == 1
    assert statuses(settings) == {"ada@example.org": "active"}


def test_reset_clears_a_bounce(run, settings: Settings) -> None:
    run("subscribers", "add", "ada@example.org", "--confirmed")
    store = Store.open(settings.db)
    row = store.subscribers.get_by_email("ada@example.org")
    assert row is not None
    store.subscribers.set_status(row["id"], "bounced", actor="test")
    store.close()
    assert run("subscribers", "reset", "ada@example.org").output.strip().endswith("active")
    refused = run("subscribers", "reset", "ada@example.org")
    assert refused.exit_code == 1 and "not bounced or complained" in refused.output


def test_every_subscriber_command_has_help(run) -> None:
    for command in ("add", "import", "export", "list", "show", "remove", "erase", "reset"):
        result = run("subscribers", command, "--help")
        assert result.exit_code == 0 and "Usage:" in result.output
    assert "--workers" in run("serve", "--help").output
