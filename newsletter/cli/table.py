"""Aligned text tables for the list commands: each column as wide as its widest cell.

Widths count terminal cells, not characters: a subscriber called 王伟 takes four, Zoë three.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Collection, Iterable, Sequence

GAP = "  "


def cells(text: str) -> int:
    """Terminal cells `text` takes: wide East Asian characters two, combining marks none."""
    width = 0
    for char in text:
        if unicodedata.combining(char):
            continue
        width += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return width


def _pad(text: str, width: int, right: bool) -> str:
    fill = " " * (width - cells(text))
    return fill + text if right else text + fill


def table(
    headers: Sequence[str], rows: Iterable[Sequence[object]], *, right: Collection[int] = ()
) -> list[str]:
    """The header line and one line per row; columns in `right` (numbers) align right.

    The last column is not padded, so lines end where their text does.
    """
    body = [[str(value) for value in row] for row in rows]
    widths = [
        max(cells(header), *(cells(row[n]) for row in body)) if body else cells(header)
        for n, header in enumerate(headers)
    ]
    return [
        GAP.join(_pad(value, widths[n], n in right) for n, value in enumerate(line)).rstrip()
        for line in [list(headers), *body]
    ]
