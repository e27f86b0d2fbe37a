"""Files only this user may read, whatever the umask: the database (subscribers and, without
NEWSLETTER_SECRET_KEY, the key that signs every link), its lock, the outbox's messages (each
holds a reader's unsubscribe link) and subscriber exports.

A file is created 0600 and a folder 0700 explicitly (`os.open` and `mkdir` modes only ever
lose bits to the umask, so the mode is set again after creating). The web archive is not
private: it is what the public site serves.
"""

from __future__ import annotations

import os
import stat
from contextlib import suppress
from pathlib import Path
from typing import IO

FILE_MODE = 0o600
DIR_MODE = 0o700


def make_dirs(path: Path) -> None:
    """`mkdir -p path`; every folder it creates is 0700 (existing ones are left as they are)."""
    missing = []
    for folder in (path, *path.parents):
        if folder.exists():
            break
        missing.append(folder)
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=DIR_MODE)
        except FileExistsError:
            continue  # made meanwhile by another process
        os.chmod(folder, DIR_MODE)


def open_file(path: Path, mode: str = "wb") -> IO[bytes]:
    """Open `path` to write bytes ("wb" or "ab", as `open`), created 0600 if new."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if "a" in mode else os.O_TRUNC)
    fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0), FILE_MODE)
    with suppress(OSError):  # not ours (a shared install): its mode is its owner's
        os.fchmod(fd, FILE_MODE)
    return os.fdopen(fd, mode)


def tighten(path: Path) -> None:
    """Take group and other access off an existing file of ours (made by an older release)."""
    with suppress(OSError):
        current = stat.S_IMODE(path.stat().st_mode)
        if current & 0o077:
            os.chmod(path, current & 0o700)
