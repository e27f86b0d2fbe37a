"""The list commands print aligned tables: each column starts at the same place on every line."""

from __future__ import annotations

from pathlib import Path

from newsletter.cli.table import cells, table

SAMPLE = Path(__file__).parent.parent / "newsletter" / "sample"


def grid(line: str) -> list[str]:
    """The line as terminal cells (a wide character fills two)."""
    out: list[str] = []
    for char in line:
        out += [char] * cells(char)
    return out


def assert_aligned(lines: list[str], left: list[str], right: list[str] = ()) -> None:
    """Left columns start, right columns end, where their header does, on every row."""
    header = lines[0]
    for name in left:
        at = cells(header[: header.index(name)])
        for line in lines[1:]:
            row = grid(line)
            assert row[at - 2 : at] == [" ", " "] and row[at] != " ", (name, line)
    for name in right:
        end = cells(header[: header.index(name)]) + len(name) - 1
        for line in lines[1:]:
            row = grid(line)
            assert row[end] != " " and (end + 1 == len(row) or row[end + 1] == " "), (name, line)


def test_table_pads_by_terminal_cells() -> None:
    rows = [(7, "王伟", "w@x.org"), (1234, "Zoë", "z@x.org")]
    assert table(("ID", "NAME", "EMAIL"), rows, right={0}) == [
        "  ID  NAME  EMAIL",
        "   7  王伟  w@x.org",
        "1234  Zoë   z@x.org",
    ]
    assert cells("王伟") == 4 and cells("Zoe\u0308") == 3


def test_subscribers_list_is_aligned(run) -> None:
    for email, name in [
        ("a@example.org", "Al"),
        ("someone.with.a.long.address@example.org", "王伟"),
        ("z@example.org", "Zoë Quinn-Gallagher"),
    ]:
        assert run("subscribers", "add", email, "--name", name, "--confirmed").exit_code == 0
    lines = run("subscribers", "list").output.splitlines()
    assert lines[0].split() == ["ID", "STATUS", "EMAIL", "NAME", "SINCE"]
    assert lines[-1].startswith("3 shown")
    assert_aligned(lines[:-1], ["STATUS", "EMAIL", "NAME", "SINCE"], ["ID"])


def test_sources_and_signals_lists_are_aligned(run) -> None:
    feeds = SAMPLE / "feeds"
    run("sources", "add", "a", str(feeds / "markets-wire.rss"))
    run("sources", "add", "a-much-longer-source-name", str(feeds / "grid-filings.atom"))
    run("sources", "add", "mid-length", str(feeds / "arxiv-cs-lg.xml"))
    assert run("collect").exit_code == 0
    sources = run("sources", "list").output.splitlines()
    assert len(sources) == 4
    assert_aligned(
        sources, ["STATE", "LAST FETCH", "STATUS", "URL"], ["ITEMS", "SIGNALS", "ERRORS"]
    )

    signals = run("signals", "list").output.splitlines()
    assert len(signals) == 9 and signals[-1] == "7 signals"
    assert_aligned(signals[:-1], ["PUBLISHED", "CATEGORY", "SOURCE", "TITLE"], ["ID", "SCORE"])
