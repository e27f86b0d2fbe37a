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

    #: the failure concerns this recipient alone (an address refused, a mailbox full), not the
    #: server, the account or the message: only other failures count towards the error threshold
    about_recipient: bool = False


class TemporarySendError(SendError):
    """Worth retrying later: SMTP 4xx, HTTP 429/5xx, timeouts, dropped connections.

    Raised only when the provider certainly did not accept the message (an answer said so, or
    the request never left); a hand-off whose answer was lost is `UnknownOutcome` instead.
    `throttled`: the provider asked us to slow down (429, quota); waited out, never a fault.
    """

    def __init__(
        self,
        message: str,
        retry_after: float | None = None,
        *,
        about_recipient: bool = False,
        throttled: bool = False,
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.about_recipient = about_recipient
        self.throttled = throttled


class PermanentSendError(SendError):
    """Will never succeed as it is: SMTP 5xx, provider rejects. `hard_bounce`: the address does
    not exist (stop mailing it); `about_recipient`: the refusal concerns this recipient only."""

    def __init__(
        self, message: str, hard_bounce: bool = False, *, about_recipient: bool | None = None
    ) -> None:
        super().__init__(message)
        self.hard_bounce = hard_bounce
        self.about_recipient = hard_bounce if about_recipient is None else about_recipient


class EditorialError(NewsletterError):
    """A draft cannot be made, accepted or rejected, or the ranker cannot fit or rank."""


class DraftFailed(EditorialError):
    """One signal's draft failed (a bad answer, a timeout, retries spent); the others go on."""


class LLMUnavailable(EditorialError):
    """The language model server refuses the whole run (credentials, model, address)."""
