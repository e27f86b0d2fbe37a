"""The `file` sender: one .eml per message in an outbox folder (the default; nothing leaves)."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from newsletter.delivery.message import Message
from newsletter.delivery.senders.base import Sender, SendResult
from newsletter.private_files import make_dirs, open_file

_UNSAFE = re.compile(r"[^A-Za-z0-9._@+-]")


class FileSender(Sender):
    name = "file"
    batch_size = 50

    def __init__(self, outbox: Path) -> None:
        self.outbox = Path(outbox)

    def path_for(self, message: Message) -> Path:
        folder = self.outbox / (_UNSAFE.sub("_", message.tag) or "messages")
        ident = _UNSAFE.sub("", message.message_id.strip("<>").split("@")[0])
        return folder / f"{_UNSAFE.sub('_', message.to_addr)}.{ident}.eml"

    def send(self, messages: Sequence[Message]) -> list[SendResult]:
        results = []
        for message in messages:
            path = self.path_for(message)
            make_dirs(path.parent)  # 0700, and each message 0600: they hold readers' links
            partial = path.with_suffix(".eml.part")
            with open_file(partial, "wb") as handle:
                handle.write(message.as_bytes())
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(partial, path)  # a reader never sees half a message
            results.append(SendResult(message, provider_id=str(path)))
        return results
