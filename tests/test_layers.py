"""Imports flow one way: a module imports only from its own layer or the layers below it,
and `newsletter` never imports `subscribers` (but for `newsletter serve`, the entry point that
starts it). A new folder gets a line in LAYERS."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).parent.parent

#: lowest first; a module may import its own layer and anything listed before it
LAYERS: list[set[str]] = [
    {"__init__", "models", "errors", "settings", "weeks", "tokens", "slugs", "private_files"},
    {"store"},
    {"signals"},
    {"editorial"},
    {"dispatch"},
    {"site"},
    {"engagement"},
    {"delivery"},
    {"readers"},
    {"preview", "weekly", "demo"},
    {"checks"},
    {"cli"},
]


def _layer(module: str) -> int:
    top = module.split(".")[1] if "." in module else "__init__"
    for number, names in enumerate(LAYERS):
        if top in names:
            return number
    raise AssertionError(f"newsletter.{top} is in no layer: add it to LAYERS in {__file__}")


def _imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
    return found


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" and len(parts) > 1 else parts)


def test_imports_flow_one_way() -> None:
    wrong = []
    for path in sorted((ROOT / "newsletter").rglob("*.py")):
        module = _module(path)
        own = _layer(module)
        for imported in _imports(path):
            if imported.startswith("subscribers") and module != "newsletter.cli.serve":
                wrong.append(f"{module} imports {imported} (newsletter never imports subscribers)")
            elif imported.startswith("newsletter.") and _layer(imported) > own:
                wrong.append(
                    f"{module} (layer {own}) imports {imported} (layer {_layer(imported)})"
                )
    assert not wrong, "\n".join(wrong)
