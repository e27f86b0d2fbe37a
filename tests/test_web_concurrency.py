"""A weekly send writing delivery rows while sign-ups arrive over HTTP: neither side may fail
with "database is locked" (WAL, a busy timeout, and write transactions taken up front)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx
from test_web_live import serving

from newsletter.delivery.deliver import DeliveryReport, send_dispatch
from newsletter.delivery.message import Message
from newsletter.delivery.senders import MemorySender
from newsletter.demo import load_sample
from newsletter.dispatch.build import approve, build_dispatch
from newsletter.settings import Settings, load_settings
from newsletter.store import Store
from newsletter.weeks import Week

SAMPLE = Path(__file__).parent.parent / "newsletter" / "sample"
WEEK = Week(2026, 24)
READERS = 1500
SIGNUPS = 200


def prepare(settings: Settings) -> None:
    store = Store.open(settings.db)
    try:
        load_sample(store, now=datetime(2026, 6, 14, tzinfo=UTC))
        with store.transaction():
            for i in range(READERS):
                store.subscribers.add(
                    f"reader{i}@example.org", name=None, status="active", actor="test"
                )
        build_dispatch(store, settings, WEEK)
        approve(store, settings, WEEK)
    finally:
        store.close()


def slowly(message: Message) -> None:
    time.sleep(0.0005)  # a sender that takes a moment, so the send overlaps the sign-ups


def test_sign_ups_during_a_send_neither_fails(env: dict[str, str]) -> None:
    settings = load_settings({**env, "NEWSLETTER_SIGNUP_IP_LIMIT": "0"}, env_file=None)
    prepare(settings)
    report: list[DeliveryReport] = []
    errors: list[BaseException] = []

    def send() -> None:
        store = Store.open(settings.db)
        try:
            report.append(send_dispatch(store, settings, MemorySender(fail=slowly), WEEK))
        except BaseException as exc:
            errors.append(exc)
        finally:
            store.close()

    with serving(settings) as live:
        token = live.form_token()
        cookies = dict(live.client.cookies)
        sender = threading.Thread(target=send)
        sender.start()

        client = httpx.Client(base_url=live.url, cookies=cookies, timeout=60)

        def sign_up(i: int) -> int:
            data = {"email": f"new{i}@example.org", "csrf_token": token}
            return client.post("/subscribe", data=data).status_code

        with client, ThreadPoolExecutor(max_workers=8) as pool:
            codes = list(pool.map(sign_up, range(SIGNUPS)))
        still_sending = sender.is_alive()
        sender.join(120)
        live.mails()

        assert errors == []
        assert codes == [200] * SIGNUPS
        assert still_sending, "the send finished before the sign-ups: nothing overlapped"
        [done] = report
        assert done.sent == READERS and done.ok
        counts = live.store.subscribers.counts()
        assert counts["pending"] == SIGNUPS and counts["active"] == READERS
