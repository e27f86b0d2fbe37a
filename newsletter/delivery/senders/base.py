"""The one interface every sender implements, like an httpx transport: hand over messages, get
one result each. Backends map their library's errors into our exception tree at their edge.

What a sender must do:
- `send(messages)` hands the messages over, once, and answers one `SendResult` per message in
  order. It never retries or sleeps: the delivery state machine (`delivery.deliver`) owns
  retries, backoff, batching and the record of every hand-off.
- Every error is one of ours: `TemporarySendError` (certainly not accepted, worth another try),
  `PermanentSendError` (never as it is; `RejectedRequest` when the provider refused a request
  of several messages for its content, so one of them may be at fault), `UnknownOutcome` (the
  request left and no readable answer came back: it may have been accepted) and
  `SenderUnavailable` (this message was not handed over and nothing more can be: credentials,
  a full disk). Raise for the whole call, or return per message.
- A message's identity (`message.message_id`) is fixed before its first hand-off and is the
  same on every retry: use it as the provider's Message-ID and in any metadata.
- `prepare(messages)` may build the request in advance (a batch API's JSON body): the state
  machine calls it on the thread that claims the messages and hands what it returns to
  `send`, so the threads that hand messages over only do I/O. `send` takes either.

What a sender may declare (optional capabilities; the state machine reads them, it never looks
at the class):
- `idempotent` / `idempotency_window`: handing over the same messages again (same ids, same
  order) within the window never sends a second copy (an idempotency key derived with
  `batch_key`). Then an unanswered hand-off is simply repeated.
- `can_look_up` / `record_delay` / `look_up()`: the provider's own record can say whether an
  unanswered message was accepted; a message not found is taken as never accepted only once
  `record_delay` seconds have passed since its hand-off (records lag behind).
A sender that declares neither leaves unanswered hand-offs `unknown` for the operator.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType

from newsletter.delivery.message import Message
from newsletter.errors import PermanentSendError, SendError


class SenderUnavailable(SendError):
    """The sender cannot take messages at all (credentials refused, untrusted certificate, a
    full or read-only outbox): sending stops at once, and what was not handed over stays
    queued, instead of failing every subscriber one by one."""


class UnknownOutcome(SendError):
    """The hand-off broke after the whole message was handed over (the connection died before
    the answer, or the answer did not parse): it may have been delivered, so it is recorded
    `unknown` and only repeated where that cannot duplicate it."""


class RejectedRequest(PermanentSendError):
    """The provider refused a request as a whole for its content (HTTP 400/413/422). With
    several messages in it, one of them may be at fault: the state machine splits the hand-off
    in halves and tries each, so one invalid address fails only its own recipient."""

    def __init__(self, message: str) -> None:
        super().__init__(message, about_recipient=False)


@dataclass(frozen=True)
class SendResult:
    message: Message
    provider_id: str | None = None
    error: SendError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class Prepared(tuple[Message, ...]):
    """One hand-off's messages with the request body `sender` built for them in advance."""

    sender: Sender
    body: bytes

    def __new__(cls, messages: Sequence[Message], sender: Sender, body: bytes) -> Prepared:
        self = super().__new__(cls, messages)
        self.sender, self.body = sender, body
        return self


@dataclass(frozen=True)
class Lookup:
    """What the provider's own record says about a message whose hand-off went unanswered.

    `accepted`: True (it is there; `provider_id` is its id), False (it is not), None (the
    record could not be read; `detail` says why).
    """

    accepted: bool | None
    provider_id: str | None = None
    detail: str = ""


def batch_key(messages: Sequence[Message]) -> str:
    """The identity of one hand-off: the same messages in the same order give the same key, so
    a repeat of an unanswered call carries the idempotency key of the original."""
    digest = hashlib.sha256("\n".join(m.message_id for m in messages).encode()).hexdigest()
    return f"nl-{digest}"


class Sender(ABC):
    name: str = "sender"
    #: how many messages one `send` call may take (API batch endpoints take many)
    batch_size: int = 1
    #: a repeat of the same messages within `idempotency_window` seconds sends nothing twice
    idempotent: bool = False
    idempotency_window: float = 0.0
    #: `look_up` can ask the provider's record; a message appears there `record_delay` s late
    can_look_up: bool = False
    record_delay: float = 0.0

    @abstractmethod
    def send(self, messages: Sequence[Message]) -> list[SendResult]:
        """Hand the messages over once; one result per message, in order.

        Raise (or return per message) TemporarySendError only when nothing was accepted,
        UnknownOutcome when it may have been, SenderUnavailable when nothing can be sent.
        """

    def prepare(self, messages: Sequence[Message]) -> Sequence[Message]:
        """What `send` will be given for these messages: themselves, or a `Prepared` with the
        request built now (on the claiming thread, before any hand-off)."""
        return messages

    def look_up(self, message: Message, handed_at: float) -> Lookup:
        """Whether the provider accepted `message`, handed over at Unix time `handed_at`.

        Only senders that declare `can_look_up` implement it.
        """
        raise NotImplementedError(f"{self.name} cannot look messages up")

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


def send_each(
    messages: Sequence[Message], send_one: Callable[[Message], str | None]
) -> list[SendResult]:
    """A batch for a sender whose API takes one message a call: one result per message. A lone
    message's error is raised (the run's retry rules see it directly); SenderUnavailable always
    is, since no later message can go either."""
    results = []
    for message in messages:
        try:
            results.append(SendResult(message, provider_id=send_one(message)))
        except SenderUnavailable:
            raise
        except SendError as exc:
            if len(messages) == 1:
                raise
            results.append(SendResult(message, error=exc))
    return results
