"""The `file` sender: one .eml per message in an outbox folder (the default; nothing leaves).

Each message is written to `<name>.eml.part`, flushed to disk and renamed, so a reader never sees
half a message; the folder is synced before the batch is reported written. The file name holds
the Message-ID, so writing the same message again replaces its file (a repeat cannot make a
second copy) and whether a message arrived is a look at the disk. A full, read-only or failing
outbox is `SenderUnavailable`: the half-written file is removed, the messages not yet written
are not handed over, and the run stops with the reason.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path

from newsletter.delivery.message import Message
from newsletter.delivery.senders.base import Lookup, Sender, SenderUnavailable, SendResult
from newsletter.private_files import make_dirs, open_file

_UNSAFE = re.compile(r"[^A-Za-z0-9._@+-]")
_WHY = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "not permitted",
}


class FileSender(Sender):
    name = "file"
    batch_size = 50
    idempotent = True
    idempotency_window = math.inf
    can_look_up = True

    def __init__(self, outbox: Path) -> None:
        self.outbox = Path(outbox)

    def path_for(self, message: Message) -> Path:
        folder = self.outbox / (_UNSAFE.sub("_", message.tag) or "messages")
        ident = _UNSAFE.sub("", message.message_id.strip("<>").split("@")[0])
        return folder / f"{_UNSAFE.sub('_', message.to_addr)}.{ident}.eml"

    def send(self, messages: Sequence[Message]) -> list[SendResult]:
        results: list[SendResult] = []
        folders: set[Path] = set()
        for n, message in enumerate(messages):
            path = self.path_for(message)
            try:
                self._write(path, message.as_bytes())
            except OSError as exc:
                stop = self._unavailable(path, exc)
                return results + [SendResult(m, error=stop) for m in messages[n:]]
            folders.add(path.parent)
            results.append(SendResult(message, provider_id=str(path)))
        for folder in folders:
            try:
                _sync_folder(folder)
            except OSError as exc:  # the names may not survive a power cut: not handed over
                stop = self._unavailable(folder, exc)
                return [SendResult(m, error=stop) for m in messages]
        return results

    def _write(self, path: Path, data: bytes) -> None:
        partial = path.with_suffix(".eml.part")
        try:
            make_dirs(path.parent)  # 0700, and each message 0600: they hold readers' links
            with open_file(partial, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(partial, path)  # a reader never sees half a message
        except OSError:
            with contextlib.suppress(OSError):
                partial.unlink()
            raise

    def _unavailable(self, path: Path, exc: OSError) -> SenderUnavailable:
        why = _WHY.get(exc.errno or 0, exc.strerror or type(exc).__name__)
        return SenderUnavailable(
            f"outbox {self.outbox}: {why} (writing {path.name}); nothing more was written"
        )

    def look_up(self, message: Message, handed_at: float) -> Lookup:
        """The file is there (written whole) or not; a half-written one is removed."""
        path = self.path_for(message)
        if path.is_file():
            return Lookup(True, provider_id=str(path))
        with contextlib.suppress(FileNotFoundError):
            path.with_suffix(".eml.part").unlink()
        return Lookup(False, detail=f"{path.name} is not in the outbox")


def _sync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
