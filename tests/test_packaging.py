"""What `make demo` and `make test` install, and how the render check says to get Playwright."""

from __future__ import annotations

import re
import shutil
import sys
import tomllib
from pathlib import Path

import pytest

from newsletter.checks.render import check_render

ROOT = Path(__file__).parent.parent


def _stamp_recipe(variable: str) -> list[str]:
    text = (ROOT / "Makefile").read_text()
    block = re.search(rf"^\$\({variable}\):.*?\n((?:\t.*\n)+)", text, re.MULTILINE)
    assert block, variable
    return [line.strip() for line in block.group(1).splitlines()]


def test_make_demo_installs_the_package_without_the_test_tools() -> None:
    text = (ROOT / "Makefile").read_text()
    demo = re.search(r"^demo: (.+)$", text, re.MULTILINE)
    assert demo and demo.group(1).strip() == "$(DEMO_STAMP)"
    installs = [line for line in _stamp_recipe("DEMO_STAMP") if "pip install" in line]
    assert installs == ["$(BIN)/pip install --quiet -e ."]


def test_make_test_installs_the_test_extra_which_carries_render() -> None:
    assert "$(BIN)/pip install --quiet -e '.[test]'" in _stamp_recipe("STAMP")
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert extras["optional-dependencies"]["render"] == ["playwright>=1.45"]
    assert "newsletter[render,ses]" in extras["optional-dependencies"]["test"]
    assert extras["optional-dependencies"]["ses"] == ["botocore>=1.34"]
    assert not [d for d in extras["dependencies"] if d.startswith("playwright")]


def test_the_render_check_says_how_to_install_playwright(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "playwright", None)  # as if it were not installed
    (finding,) = check_render("<p>hi</p>", shutil.which("sh") or "/bin/sh")
    assert finding.check == "render" and "playwright package is not installed" in finding.message
    assert "pip install 'newsletter[render]'" in finding.fix


def test_check_prints_that_install_line(run, monkeypatch: pytest.MonkeyPatch) -> None:
    import newsletter.checks.preflight as preflight

    monkeypatch.setitem(sys.modules, "playwright", None)
    monkeypatch.setattr(preflight, "find_chromium", lambda: shutil.which("sh"))
    assert run("demo").exit_code == 0
    result = run("check", "--week", "2026-W24", "--skip", "spam")
    assert "pip install 'newsletter[render]'" in result.output
