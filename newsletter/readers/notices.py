"""The mails readers are owed outside the dispatch: confirmation, "come back", "you are
already subscribed", the welcome, and the mails of a change of address (the new address's
confirmation, "it changed" to the old one, "someone asked" to the owner of a taken one).
Composed from `templates/web/mail/`.

A notice is durable: `queue_notice` records it in the caller's transaction (the same one as the
sign-up that owes it), and `send_owed_notices` sends whatever is owed, by whichever process
runs it, after any restart. It moves like a delivery (see `newsletter.delivery.deliver`): its
Message-ID is fixed at its first claim; it counts as sent only once the sender accepted it; a
temporary failure waits `queued` for its retry; a hand-off left without an answer (the process
died) is `unknown` and is settled only by evidence (the provider's record, or an idempotent
repeat), never by sending it a second time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import jinja2

from newsletter.delivery.headers import header_text
from newsletter.delivery.message import Message, new_message_id
from newsletter.delivery.pacing import RetryPolicy
from newsletter.delivery.resolve import ACCEPTED, NEVER_ARRIVED, lookup_verdict, may_repeat
from newsletter.delivery.senders.base import Sender, SenderUnavailable, UnknownOutcome
from newsletter.dispatch.render import templates_dir
from newsletter.errors import PermanentSendError, SendError, TemporarySendError
from newsletter.readers.preferences import change_purpose
from newsletter.readers.subscriptions import Notice
from newsletter.settings import Settings
from newsletter.store import Store
from newsletter.store.notices import NoticeOutcome, OwedNotice, owner
from newsletter.tokens import make_token, preferences_token, unsubscribe_token

log = logging.getLogger(__name__)

_mail_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(templates_dir() / "web" / "mail")),
    autoescape=jinja2.select_autoescape(enabled_extensions=("html", "html.j2")),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
)

#: every kind of notice and its subject; a new kind adds a line here (and its template text)
SUBJECTS = {
    "confirm": "Confirm your subscription to {name}",
    "resubscribe": "Confirm your subscription to {name}",
    "already": "You are already subscribed to {name}",
    "welcome": "Welcome to {name}",
    "change": "Confirm your new address for {name}",
    "changed": "Your address for {name} has changed",
    "change_taken": "Someone asked to move a subscription to {name} to this address",
}
#: kinds that go to someone who may not be the reader (a new address nobody has confirmed, an
#: old address the reader has left): they carry no link that acts on the subscription
NO_READER_LINKS = ("change", "changed")
#: notices claimed in one commit by one sending pass
CLAIM = 20


def queue_notice(
    store: Store,
    subscriber_id: int,
    kind: str,
    *,
    issued_at: float | None = None,
    to_email: str | None = None,
) -> Notice:
    """Owe subscriber `subscriber_id` a notice of `kind`; sent by `send_owed_notices`.

    Call it inside the transaction that makes the notice owed (a sign-up, a confirmation), so
    the two are recorded together or not at all. `issued_at` dates the links it carries;
    `to_email`: where it goes, when not to the subscriber's address.
    """
    if kind not in SUBJECTS:
        raise ValueError(f"unknown notice kind {kind!r}")
    issued = time.time() if issued_at is None else issued_at
    with store.subscribers.writing():
        notice_id = store.notices.queue(subscriber_id, kind, issued_at=issued, to_email=to_email)
        row = store.subscribers.get(subscriber_id)
    assert row is not None
    return Notice(
        subscriber_id,
        to_email or row["email"],
        row["name"],
        kind,
        issued,
        row["token_nonce"],
        id=notice_id,
    )


def confirm_url(settings: Settings, secret: str, notice: Notice) -> str:
    """The link that confirms what the notice asks: a subscription, or a new address (dated
    with the request: only the latest request's link works)."""
    purpose = "resubscribe" if notice.kind == "resubscribe" else "confirm"
    if notice.kind == "change":  # to the new address, signed for it (`readers.preferences`)
        purpose = change_purpose(notice.email)
    token = make_token(
        secret, purpose, notice.subscriber_id, notice.token_nonce, issued_at=int(notice.claimed_at)
    )
    route = "address" if notice.kind == "change" else "confirm"
    return f"{settings.public_url}/{route}/{token}"


def preferences_url(settings: Settings, secret: str, subscriber_id: int, nonce: str) -> str:
    return f"{settings.public_url}/preferences/{preferences_token(secret, subscriber_id, nonce)}"


def compose_notice(
    settings: Settings, secret: str, notice: Notice, *, latest_week: str | None = None
) -> Message:
    """The mail one notice stands for.

    A notice may go to an address nobody has confirmed yet, so nothing the person who posted
    the form typed (the name) appears in it: not in the greeting, not in To:. The mails of an
    address change carry no preferences or unsubscribe link (`NO_READER_LINKS`): whoever reads
    them may not be the reader. `latest_week`: the newest sent dispatch (the welcome links its
    archive page).
    """
    reader_links = notice.kind not in NO_READER_LINKS
    nonce = notice.token_nonce
    token = unsubscribe_token(secret, notice.subscriber_id, nonce)
    context = {
        "kind": notice.kind,
        "settings": settings,
        "confirm_url": (
            confirm_url(settings, secret, notice)
            if notice.kind in ("confirm", "resubscribe", "change")
            else ""
        ),
        "unsubscribe_url": f"{settings.public_url}/unsubscribe/{token}" if reader_links else "",
        "preferences_url": (
            preferences_url(settings, secret, notice.subscriber_id, nonce) if reader_links else ""
        ),
        "days": settings.confirm_days,
        "note": settings.welcome_note or settings.tagline,
        "sections": settings.sections,
        "latest_url": f"{settings.public_url}/archive/{latest_week}/" if latest_week else "",
        "archive_url": f"{settings.public_url}/archive/",
    }
    headers = {"Auto-Submitted": "auto-generated"}
    if settings.reply_to:
        headers["Reply-To"] = settings.reply_to
    return Message(
        from_addr=settings.from_addr,
        to_addr=notice.email,
        to_name="",  # a stranger's name never enters a header before they confirm
        subject=header_text(SUBJECTS[notice.kind].format(name=settings.name)),
        html=_mail_env.get_template("notice.html.j2").render(context),
        text=_mail_env.get_template("notice.txt.j2").render(context),
        message_id=notice.message_id or new_message_id(settings.from_domain),
        headers=headers,
        tag="notices",
    )


@dataclass
class NoticeReport:
    sent: int = 0
    failed: int = 0
    unknown: int = 0  # handed over without an answer, and not settled (yet)
    waiting: int = 0  # queued for a retry later
    errors: list[str] = field(default_factory=list)
    stopped: str = ""  # the sender could take nothing more


def notice_of(owed: OwedNotice) -> Notice:
    """The notice a queued row stands for, with its identity."""
    return Notice(
        owed.subscriber_id,
        owed.email,
        owed.name,
        owed.kind,
        owed.issued_at,
        owed.token_nonce,
        id=owed.id,
        message_id=owed.message_id or "",
    )


def send_owed_notices(
    store: Store,
    settings: Settings,
    sender: Sender,
    *,
    progress: Callable[[int], None] | None = None,
    resolve: bool = True,
    clock: Callable[[], float] = time.time,
) -> NoticeReport:
    """Send every notice owed now, one hand-off each; return what happened.

    With `resolve`, first the notices a dead process left `sending` become unknown, and unknown
    ones are settled where the sender allows. A notice that fails for good releases the
    once-an-hour limit, so the person can ask again at once.
    """
    report = NoticeReport()
    secret = store.secret_key(settings.secret_key)
    policy = RetryPolicy.from_settings(settings)
    claimer = owner()
    if resolve:  # what a dead process left, then what is unknown: rare, so not on every pass
        with store.subscribers.writing():
            store.notices.abandoned_to_unknown(now=clock())
        _resolve_unknown(store, settings, sender, secret, claimer, report, clock)
    while not report.stopped:
        with store.subscribers.writing():
            owed = store.notices.claim_due(
                now=clock(),
                limit=CLAIM,
                claimer=claimer,
                new_id=lambda: new_message_id(settings.from_domain),
            )
        if not owed:
            break
        for row in owed:
            _hand_over(store, settings, sender, secret, row, policy, report, clock)
            if progress:
                progress(1)
    return report


def _hand_over(
    store: Store,
    settings: Settings,
    sender: Sender,
    secret: str,
    row: OwedNotice,
    policy: RetryPolicy,
    report: NoticeReport,
    clock: Callable[[], float],
    *,
    repeat: bool = False,
) -> None:
    notice = notice_of(row)
    if report.stopped:  # claimed with others, but the sender stopped: not handed over
        _record(store, row, NoticeOutcome(row.id, "queued", handed=False))
        return
    if row.subscriber_status in ("bounced", "complained"):  # never mailed again
        _record(store, row, NoticeOutcome(row.id, "failed", error="the address bounced"))
        report.failed += 1
        return
    try:
        message = compose_notice(settings, secret, notice, latest_week=_latest(store, notice))
        with store.subscribers.writing():  # from here on a kill leaves it unknown
            store.notices.handing(row.id, now=clock())
        results = sender.send([message])
        error = results[0].error if results else UnknownOutcome("no answer")
        provider_id = results[0].provider_id if results else None
    except SendError as exc:
        error, provider_id = exc, None
    except (KeyError, jinja2.TemplateError) as exc:  # a kind without a template or subject
        error, provider_id = PermanentSendError(f"cannot compose: {exc}"), None
    now = clock()
    if error is None:
        _record(store, row, NoticeOutcome(row.id, "sent", provider_id=provider_id))
        report.sent += 1
        return
    text = f"{row.email}: {error}"
    if isinstance(error, SenderUnavailable):
        report.stopped = str(error)
        _record(store, row, NoticeOutcome(row.id, "queued", error=str(error), handed=False))
        return
    if isinstance(error, UnknownOutcome) or (repeat and isinstance(error, TemporarySendError)):
        report.unknown += 1
        report.errors.append(text)
        _record(store, row, NoticeOutcome(row.id, "unknown", error=str(error)))
        return
    attempts = row.attempts + (0 if repeat else 1)
    if isinstance(error, TemporarySendError) and attempts < policy.attempts:
        retry_at = now + policy.delay(attempts, error.retry_after)
        _record(store, row, NoticeOutcome(row.id, "queued", error=str(error), retry_at=retry_at))
        report.waiting += 1
        return
    report.failed += 1
    report.errors.append(text)
    _record(store, row, NoticeOutcome(row.id, "failed", error=str(error)))


def _latest(store: Store, notice: Notice) -> str | None:
    return store.dispatches.latest_sent_week() if notice.kind == "welcome" else None


def _record(store: Store, row: OwedNotice, outcome: NoticeOutcome) -> None:
    with store.subscribers.writing():
        store.notices.record([outcome])
        if outcome.status == "sent":
            store.subscribers.log(row.subscriber_id, f"notice.{row.kind}", "mail")
        elif outcome.status == "failed":
            # it will not arrive: let the next sign-up ask for another at once
            store.subscribers.release_notice(row.subscriber_id, row.issued_at)


def _resolve_unknown(
    store: Store,
    settings: Settings,
    sender: Sender,
    secret: str,
    claimer: str,
    report: NoticeReport,
    clock: Callable[[], float],
) -> None:
    """Settle unknown notices from evidence: the provider's record, or an idempotent repeat."""
    policy = RetryPolicy.from_settings(settings)
    for row in store.notices.unknown():
        now = clock()
        if sender.can_look_up:
            notice = notice_of(row)
            message = compose_notice(settings, secret, notice, latest_week=_latest(store, notice))
            found = sender.look_up(message, row.handed_at or 0.0)
            verdict = lookup_verdict(sender, found, row.handed_at, now)
            if verdict == ACCEPTED:
                _record(store, row, NoticeOutcome(row.id, "sent"))
                report.sent += 1
            elif verdict == NEVER_ARRIVED:
                _record(store, row, NoticeOutcome(row.id, "queued", error="never arrived"))
            continue
        if may_repeat(sender, row.first_handed_at, now) and row.attempts < policy.attempts:
            with store.subscribers.writing():
                claimed = store.notices.claim_repeat(row.id, now=now, claimer=claimer)
            if claimed:
                _hand_over(store, settings, sender, secret, row, policy, report, clock, repeat=True)
