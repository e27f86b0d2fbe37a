"""An in-memory sender for tests and dry runs: keeps every message it is given."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from newsletter.delivery.message import Message
from newsletter.delivery.senders.base import Sender, SendResult
from newsletter.errors import SendError


class MemorySender(Sender):
    name = "memory"

    def __init__(
        self, *, batch_size: int = 1, fail: Callable[[Message], SendError | None] | None = None
    ) -> None:
        self.batch_size = batch_size
        self.sent: list[Message] = []
        self._fail = fail

    def send(self, messages: Sequence[Message]) -> list[SendResult]:
        results = []
        for message in messages:
            error = self._fail(message) if self._fail else None
            if error is None:
                self.sent.append(message)
            results.append(SendResult(message, provider_id=message.message_id, error=error))
        return results
