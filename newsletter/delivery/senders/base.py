"""The one interface every sender implements, like an httpx transport: hand over messages, get
one result each. Backends map their library's errors to TemporarySendError / PermanentSendError.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType

from newsletter.delivery.message import Message
from newsletter.errors import SendError


class SenderUnavailable(SendError):
    """The sender refused us as a whole (credentials, certificate, configuration): sending
    stops at once instead of failing every subscriber one by one."""


class UnknownOutcome(SendError):
    """The hand-off broke after the whole message was handed over (the connection died before
    the server's answer): it may have been delivered, so it is recorded `unknown`, never
    retried on its own."""


@dataclass(frozen=True)
class SendResult:
    message: Message
    provider_id: str | None = None
    error: SendError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class Sender(ABC):
    name: str = "sender"
    #: how many messages one `send` call may take (API batch endpoints take many)
    batch_size: int = 1

    @abstractmethod
    def send(self, messages: Sequence[Message]) -> list[SendResult]:
        """Hand the messages over; one result per message, in order.

        Raise TemporarySendError when the whole call failed before anything was accepted.
        """

    def close(self) -> None:  # noqa: B027 - most senders hold nothing to release
        """Release connections."""

    def __enter__(self) -> Sender:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
