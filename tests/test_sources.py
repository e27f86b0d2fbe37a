"""Managing sources from the CLI and from a version-controlled TOML or YAML file."""

from __future__ import annotations

from pathlib import Path

import pytest

from newsletter.errors import FeedError
from newsletter.signals.sources_file import read_sources_file

FEEDS = Path(__file__).parent / "fixtures" / "feeds"
ARXIV = FEEDS / "arxiv" / "rss-arxiv-org_rss_cs.LG_2026-04-27_trimmed3.xml"
ATOM = FEEDS / "arxiv" / "rss-arxiv-org_atom_cs.AI_2025-08-20_trimmed7.xml"


def test_add_list_disable_enable_remove(run) -> None:
    added = run("sources", "add", "lg", str(ARXIV), "--category", "AI", "--label", "arXiv cs.LG")
    assert added.exit_code == 0 and "source lg added" in added.output
    assert run("sources", "add", "ai", ATOM.as_uri()).exit_code == 0
    assert run("collect").exit_code == 0
    listing = run("sources", "list").output.splitlines()
    assert listing[0].split()[:3] == ["NAME", "STATE", "LAST"]
    lg = next(line for line in listing if line.startswith("lg "))
    assert "enabled" in lg and " ok " in lg and "    3        3       0" in lg

    assert run("sources", "disable", "lg").exit_code == 0
    collected = run("collect")
    assert "lg" not in collected.output and "ai:" in collected.output
    assert "disabled" in run("sources", "list").output
    only = run("collect", "--source", "lg")
    assert "lg:" in only.output and "ai:" not in only.output
    assert run("sources", "enable", "lg").exit_code == 0

    assert run("sources", "remove", "ai").exit_code == 0
    assert "ai " not in run("sources", "list").output
    assert "7 signals" not in run("signals", "list").output  # its signals stay: 3 + 7 = 10
    assert "10 signals" in run("signals", "list").output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("sources", "add", "my feed", "https://e.org/f"), "name 'my feed'"),
        (("sources", "add", "f", "ftp://e.org/f"), "unsupported URL scheme 'ftp'"),
        (("sources", "add", "f", "https:///f"), "no valid host name"),
        (("sources", "add", "f", "https://e.org:99999/f"), "invalid port"),
        (("sources", "add", "f", "http://[::1/f"), "not a valid URL"),
        (("sources", "disable", "nope"), "no source named 'nope'"),
        (("sources", "remove", "nope"), "no source named 'nope'"),
        (("collect", "--source", "nope"), "no source named 'nope'"),
    ],
)
def test_bad_input_is_one_clear_line(run, args: tuple[str, ...], message: str) -> None:
    result = run(*args)
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output


def test_load_yaml_then_toml_with_prune(run, tmp_path: Path) -> None:
    (tmp_path / "feeds.yaml").write_text(
        f"sources:\n  - name: lg\n    url: {ARXIV}\n    category: AI\n"
        f"  - name: ai\n    url: {ATOM}\n    enabled: false\n",
        encoding="utf-8",
    )
    loaded = run("sources", "load", "feeds.yaml")
    assert loaded.exit_code == 0 and "2 added, 0 updated" in loaded.output
    assert "disabled" in run("sources", "list").output
    (tmp_path / "feeds.toml").write_text(
        f'[[source]]\nname = "lg"\nurl = "{ARXIV}"\ncategory = "Research"\n', encoding="utf-8"
    )
    pruned = run("sources", "load", "feeds.toml", "--prune")
    assert "0 added, 1 updated, 1 removed" in pruned.output
    listing = run("sources", "list").output
    assert "ai " not in listing and "lg " in listing


def test_relative_paths_are_read_from_the_files_folder(tmp_path: Path) -> None:
    (tmp_path / "feeds").mkdir()
    (tmp_path / "feeds" / "a.xml").write_bytes(ARXIV.read_bytes())
    (tmp_path / "s.toml").write_text('[[source]]\nname = "a"\nurl = "feeds/a.xml"\n')
    (spec,) = read_sources_file(tmp_path / "s.toml")
    assert spec.url == str(tmp_path / "feeds" / "a.xml")


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("a.toml", '[[source]]\nname = "a"\nurl = "https://e"\nhue = 1\n', "field 'hue'"),
        ("b.toml", '[[source]]\nname = "a"\n', "source #1: needs a name and a url"),
        ("c.toml", "[[source]\n", "invalid TOML"),
        ("d.yaml", "sources:\n  - name: a\n    url: [1]\n", "source #1: url: expected text"),
        ("e.yaml", "sources: {a: 1}\n", "expected a `sources:` list"),
        ("f.yml", "- {name: a, url: 'https://e.org'}\n- {name: a, url: 'https://e.org'}\n",
         "source 'a': the name appears twice"),
        ("g.json", "{}", "unknown format"),
        ("h.yaml", "- {name: a, url: 'https://e.org', enabled: maybe}\n", "enabled: expected true"),
    ],
)  # fmt: skip
def test_bad_sources_file_names_the_entry(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    (tmp_path / name).write_text(text, encoding="utf-8")
    with pytest.raises(FeedError) as caught:
        read_sources_file(tmp_path / name)
    assert str(caught.value).startswith(str(tmp_path / name))
    assert message in str(caught.value)


def test_a_bad_file_changes_nothing(run, tmp_path: Path) -> None:
    (tmp_path / "s.toml").write_text(
        f'[[source]]\nname = "ok"\nurl = "{ARXIV}"\n\n[[source]]\nname = "bad name"\nurl = "x"\n'
    )
    result = run("sources", "load", "s.toml")
    assert result.exit_code == 1 and "name 'bad name'" in result.output
    assert "no sources yet" in run("sources", "list").output


def test_fetch_settings_reach_collect(run, tmp_path: Path) -> None:
    big = tmp_path / "big.xml"
    big.write_bytes(ARXIV.read_bytes().replace(b"</channel>", b" " * 1_100_000 + b"</channel>"))
    assert run("sources", "add", "big", str(big)).exit_code == 0
    capped = run("collect", extra_env={"NEWSLETTER_FETCH_MAX_MB": "1"})
    assert capped.exit_code == 3 and "larger than the 1 MB limit" in capped.output
    assert run("collect").exit_code == 0
    bad = run("collect", extra_env={"NEWSLETTER_FETCH_CONCURRENCY": "0"})
    assert bad.exit_code == 1 and "NEWSLETTER_FETCH_CONCURRENCY" in bad.output
