"""Sending a dispatch to every active subscriber exactly once.

Each (dispatch, subscriber) delivery row is committed as `sending` before the hand-off and as
`sent` or `failed` after it, so a run killed at any point can be resumed without a second copy.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from newsletter.compose import Composer
from newsletter.dispatch import load_dispatch
from newsletter.errors import DispatchError, PermanentSendError, SendError
from newsletter.models import Dispatch
from newsletter.render import Rendered, frozen_rendering, render_dispatch
from newsletter.senders.base import Sender
from newsletter.settings import Settings
from newsletter.store import Store
from newsletter.weeks import Week

log = logging.getLogger(__name__)


@dataclass
class DeliveryReport:
    week: str
    sent: int = 0
    failed: int = 0
    skipped_unknown: int = 0
    dry_run: bool = False
    already_sent: bool = False
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.skipped_unknown == 0


Progress = Callable[[int, int], None]


def _rendering(store: Store, settings: Settings, dispatch: Dispatch) -> Rendered:
    """The frozen copy when sending has begun; otherwise render now and freeze it."""
    frozen = frozen_rendering(dispatch)
    if frozen is not None:
        return frozen
    rendered = render_dispatch(dispatch, settings)
    store.dispatches.freeze(
        dispatch.id, rendered.compiled_html, rendered.compiled_text, rendered.nonce
    )
    return rendered


def send_dispatch(
    store: Store,
    settings: Settings,
    sender: Sender,
    week: Week,
    *,
    dry_run: bool = False,
    force_unapproved: bool = False,
    retry_unknown: bool = False,
    progress: Progress | None = None,
) -> DeliveryReport:
    dispatch = load_dispatch(store, settings, week)
    report = DeliveryReport(str(week), dry_run=dry_run)
    if dispatch is None:
        raise DispatchError(
            f"no dispatch for {week}: run `newsletter dispatch build --week {week}`"
        )
    if dispatch.status == "sent":
        report.already_sent = True
        return report
    if not dispatch.signals:
        raise DispatchError(f"dispatch {week} has no signals; nothing to send")
    if dispatch.status == "draft" and not force_unapproved:
        raise DispatchError(f"dispatch {week} is not approved: run `newsletter dispatch approve`")
    secret = store.secret_key(settings.secret_key)
    if dry_run:
        rendered = frozen_rendering(dispatch) or render_dispatch(dispatch, settings)
        composer = Composer(rendered, settings, secret, str(week))
        for subscriber in store.subscribers.iter_active():
            composer.compose(subscriber).as_bytes()
            report.sent += 1
        return report

    rendered = _rendering(store, settings, dispatch)
    composer = Composer(rendered, settings, secret, str(week))
    store.deliveries.queue(dispatch.id)
    unknown = store.deliveries.in_flight_to_unknown(dispatch.id)
    if unknown:
        log.warning("%d deliveries were in flight when a previous run stopped", unknown)
    if retry_unknown:
        store.deliveries.requeue(dispatch.id, "unknown")
    total = store.deliveries.counts(dispatch.id)["queued"]
    done = 0
    store.deliveries.skip_inactive(dispatch.id)
    while batch := store.deliveries.next_queued(dispatch.id, sender.batch_size):
        subscriber_of = dict(batch)
        messages, ids = [], []
        for delivery_id, subscriber in batch:
            message = composer.compose(subscriber)
            if store.deliveries.mark_sending(delivery_id, message.message_id):
                messages.append(message)
                ids.append(delivery_id)
        if not messages:
            continue
        try:
            results = sender.send(messages)
        except SendError as exc:
            for delivery_id in ids:
                store.deliveries.mark_failed(delivery_id, str(exc), retry=False)
            report.failed += len(ids)
            report.errors.append(str(exc))
            continue
        for delivery_id, result in zip(ids, results, strict=True):
            if result.ok:
                store.deliveries.mark_sent(delivery_id, result.provider_id)
                report.sent += 1
            else:
                store.deliveries.mark_failed(delivery_id, str(result.error), retry=False)
                report.failed += 1
                report.errors.append(f"{result.message.to_addr}: {result.error}")
                if isinstance(result.error, PermanentSendError) and result.error.hard_bounce:
                    store.subscribers.set_status(
                        subscriber_of[delivery_id].id, "bounced", actor="send"
                    )
        done += len(ids)
        if progress:
            progress(done, total)
    store.deliveries.skip_inactive(dispatch.id)
    counts = store.deliveries.counts(dispatch.id)
    report.skipped_unknown = counts["unknown"]
    if counts["queued"] == 0 and counts["sending"] == 0:
        store.dispatches.mark_sent(dispatch.id)
        store.events.log("dispatch.sent", "dispatch", dispatch.id, week=str(week), **counts)
    return report
