"""Senders: one small interface (`Sender`), one module per way mail can leave."""

from __future__ import annotations

from newsletter.errors import SettingsError
from newsletter.senders.base import Sender, SendResult
from newsletter.senders.file import FileSender
from newsletter.senders.memory import MemorySender
from newsletter.settings import Settings

__all__ = ["FileSender", "MemorySender", "SendResult", "Sender", "make_sender"]


def make_sender(settings: Settings) -> Sender:
    """The sender `NEWSLETTER_SENDER` names, configured from the settings."""
    if settings.sender == "file":
        return FileSender(settings.outbox)
    raise SettingsError(f"NEWSLETTER_SENDER: the {settings.sender!r} sender is not available yet")
