"""One exception tree for the whole package; the CLI turns any of these into a one-line error."""

from __future__ import annotations


class NewsletterError(Exception):
    """Base of every error the product reports to a user."""


class SettingsError(NewsletterError):
    """A setting is missing or invalid; the message names it."""


class StoreError(NewsletterError):
    """The database file cannot be opened, is not SQLite, or is from a newer release."""


class FeedError(NewsletterError):
    """A source could not be fetched or parsed."""


class AnnotationError(NewsletterError):
    """An editor's annotation file is invalid; the message names file, line and field."""


class DispatchError(NewsletterError):
    """A dispatch cannot be built, changed or sent in its current state."""


class SubscriberError(NewsletterError):
    """A subscriber operation was refused (invalid address, unknown subscriber, ...)."""


class SendError(NewsletterError):
    """A message could not be handed to the sender."""


class TemporarySendError(SendError):
    """Worth retrying later: SMTP 4xx, HTTP 429/5xx, timeouts, dropped connections."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentSendError(SendError):
    """Will never succeed for this recipient: SMTP 5xx on RCPT, provider rejects."""

    def __init__(self, message: str, hard_bounce: bool = False) -> None:
        super().__init__(message)
        self.hard_bounce = hard_bounce


class EditorialError(NewsletterError):
    """A draft cannot be made, accepted or rejected, or the ranker cannot fit or rank."""


class DraftFailed(EditorialError):
    """One signal's draft failed (a bad answer, a timeout, retries spent); the others go on."""


class LLMUnavailable(EditorialError):
    """The language model server refuses the whole run (credentials, model, address)."""
