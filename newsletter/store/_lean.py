"""Load sqlite-utils without numpy and pandas.

sqlite-utils imports both at import time when they are installed (numpy is, for the ranker),
only to map their scalar types to column types, which this project never passes. Hidden while
it loads, they stay out of every command's start-up; importing them later works as usual.
"""

from __future__ import annotations

import sys

_hidden = [name for name in ("numpy", "pandas") if name not in sys.modules]
for _name in _hidden:
    sys.modules[_name] = None  # type: ignore[assignment]  # `import numpy` raises ImportError
try:
    import sqlite_utils  # noqa: F401
finally:
    for _name in _hidden:
        if sys.modules.get(_name, False) is None:
            del sys.modules[_name]
