"""Notices (confirmation mails and any other mail to one reader) are durable: queued with the
sign-up, sent by whichever process gets to them after any restart, counted as sent only once
the sender took them, never sent twice; `serve` workers do not outlive their parent."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from test_send_support import Sink, SmtpServer

from newsletter.delivery.senders import FileSender, SmtpConfig, SmtpSender
from newsletter.readers.notices import (
    compose_notice,
    notice_of,
    queue_notice,
    send_owed_notices,
)
from newsletter.readers.subscriptions import add_subscriber, request_signup
from newsletter.settings import Settings
from newsletter.store import Store

ONLY_VENV = str(Path(sys.executable).parent)


def _serve(
    env: dict[str, str], tmp_path: Path, extra: dict[str, str]
) -> tuple[subprocess.Popen, str]:
    server = subprocess.Popen(
        [str(Path(ONLY_VENV) / "newsletter"), "serve", "--port", "0", "--workers", "2"],
        env={**os.environ, **env, "PATH": ONLY_VENV, **extra},
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,  # its own process group: the test can kill it whole
    )
    assert server.stdout is not None
    line = server.stdout.readline()
    found = re.search(r"http://127\.0\.0\.1:(\d+)", line)
    assert found, line
    url = f"http://127.0.0.1:{found.group(1)}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(url + "/healthz", timeout=2)
            return server, url
        except httpx.TransportError:
            assert time.monotonic() < deadline, "serve did not answer"
            time.sleep(0.1)


def _restarted_until(
    env: dict[str, str],
    tmp_path: Path,
    extra: dict[str, str],
    sink: Sink,
    count: int,
    settle: float,
) -> None:
    """`serve` started again (the mail server up): wait until `count` mails arrived, then
    `settle` seconds more (anything sent twice arrives by then), then stop it cleanly."""
    server, _ = _serve(env, tmp_path, extra)
    try:
        deadline = time.monotonic() + 60
        while len(sink.received) < count:
            assert time.monotonic() < deadline, f"{len(sink.received)} of {count} arrived"
            time.sleep(0.1)
        time.sleep(settle)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)


def _sign_up(url: str, email: str) -> int:
    with httpx.Client(base_url=url, timeout=10) as client:
        token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/").text)
        assert token
        return client.post(
            "/subscribe", data={"email": email, "csrf_token": token.group(1)}
        ).status_code


def _children(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == parent:
                found.append(int(entry.name))
    return found


def _listening_inode(port: int) -> str:
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1].endswith(f":{port:04X}") and fields[3] == "0A":  # LISTEN
            return fields[9]
    raise AssertionError(f"nothing listens on port {port}")


def _readlink(path: Path) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z")


@pytest.mark.slow
def test_confirmation_mails_survive_a_kill_of_serve_and_go_out_once(
    env: dict[str, str], tmp_path: Path
) -> None:
    sink = Sink()
    smtp = SmtpServer(sink)  # not started yet: the mail server is down at first
    extra = {
        "NEWSLETTER_SENDER": "smtp",
        "NEWSLETTER_SMTP_HOST": "127.0.0.1",
        "NEWSLETTER_SMTP_PORT": str(smtp.port),
        "NEWSLETTER_SMTP_SECURITY": "none",
        "NEWSLETTER_SMTP_TIMEOUT": "2",
        "NEWSLETTER_RETRY_BACKOFF": "3",
    }
    people = [f"person{i}@example.org" for i in range(10)]
    store = Store.open(env["NEWSLETTER_DB"])
    server, url = _serve(env, tmp_path, extra)
    try:
        assert [_sign_up(url, p) for p in people] == [200] * 10

        def tried_once() -> bool:  # each one tried and refused, now waiting for its retry
            found = store.db.execute(
                "SELECT count(*) FROM notices WHERE status = 'queued' AND attempts >= 1"
            ).fetchone()[0]
            return found == 10

        deadline = time.monotonic() + 30
        while not tried_once():
            assert time.monotonic() < deadline, store.notices.counts()
            time.sleep(0.05)
    finally:
        os.killpg(server.pid, signal.SIGKILL)  # parent and workers at once
        server.wait(10)
    assert store.notices.counts()["queued"] == 10 and not sink.received
    with smtp:
        _restarted_until(env, tmp_path, extra, sink, 10, settle=0.5)
    assert sorted(sink.recipients()) == people and max(sink.recipients().values()) == 1
    assert store.notices.counts()["sent"] == 10
    # counted as sent once the server took it (not when it was asked for)
    row = store.subscribers.get_by_email(people[0])
    assert [e["kind"] for e in store.subscribers.events(row["id"])][-1] == "notice.confirm"
    store.close()


def test_serve_workers_exit_when_the_parent_is_killed(env: dict[str, str], tmp_path: Path) -> None:
    server, url = _serve(env, tmp_path, {})
    workers = _children(server.pid)
    listening = _listening_inode(int(url.rsplit(":", 1)[1]))
    try:
        assert len(workers) == 2
        server.send_signal(signal.SIGKILL)  # the parent only: it cannot pass anything on
        server.wait(10)
        deadline = time.monotonic() + 20
        while any(_alive(w) for w in workers):
            assert time.monotonic() < deadline, "a worker outlived its parent"
            time.sleep(0.1)
    finally:
        for pid in [server.pid, *workers]:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
    # nothing holds the listening socket any more (checked by its inode: the port number
    # itself may be taken by another program at once)
    holders = [
        fd for fd in Path("/proc").glob("[0-9]*/fd/*") if _readlink(fd) == f"socket:[{listening}]"
    ]
    assert holders == []


def test_a_notice_in_flight_when_its_process_died_is_settled_from_the_outbox(
    store: Store, settings: Settings
) -> None:
    """The file sender can look: a mail that was written is sent (never written again); one
    that was not is sent now."""
    sender = FileSender(settings.outbox)
    for email in ("kept@example.org", "lost@example.org"):
        request_signup(store, settings, email, limits=False)
    owed = store.notices.claim_due(
        now=time.time(), limit=10, claimer="nowhere:1", new_id=lambda: f"<{os.urandom(6).hex()}@x>"
    )
    kept = next(n for n in owed if n.email == "kept@example.org")
    # the dead process had handed `kept` over (its file is there), `lost` not yet
    handed = compose_notice(settings, store.secret_key(settings.secret_key), notice_of(kept))
    store.notices.handing(kept.id, now=time.time())
    sender.send([handed])
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    store.db.execute(
        "UPDATE notices SET claimed_by = ? WHERE status = 'sending'",
        [f"{socket.gethostname()}:{int(dead.stdout)}"],
    )
    report = send_owed_notices(store, settings, sender)
    assert report.sent == 2 and report.unknown == 0
    files = sorted(p.name.split(".")[0] for p in settings.outbox.rglob("*.eml"))
    assert files == ["kept@example", "lost@example"]  # one mail each
    assert store.notices.counts()["sent"] == 2


def test_notices_claimed_by_a_dead_process_but_never_begun_go_back_to_the_queue(
    store: Store, settings: Settings
) -> None:
    """A pass claims several notices and hands them over one by one: a kill during the first
    leaves that one unknown (over SMTP nobody can tell whether it arrived), but the others of
    its claim never left, so they are sent once, not stranded as unknown."""
    for email in ("first@example.org", "second@example.org", "third@example.org"):
        request_signup(store, settings, email, limits=False)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    owed = store.notices.claim_due(
        now=time.time(),
        limit=10,
        claimer=f"{socket.gethostname()}:{int(dead.stdout)}",
        new_id=lambda: f"<{os.urandom(6).hex()}@x>",
    )
    first = next(n for n in owed if n.email == "first@example.org")
    store.notices.handing(first.id, now=time.time())  # the dead process was handing it over
    sink = Sink()
    with SmtpServer(sink) as server:
        sender = SmtpSender(SmtpConfig("127.0.0.1", server.port, security="none"))
        report = send_owed_notices(store, settings, sender)
        sender.close()
    assert sorted(r.rcpt[0] for r in sink.received) == [
        "second@example.org",
        "third@example.org",
    ]
    assert report.sent == 2
    assert store.notices.counts()["unknown"] == 1 and store.notices.counts()["sent"] == 2
    second = store.subscribers.get_by_email("second@example.org")
    assert second is not None
    [notice] = store.notices.for_subscriber(second["id"])
    assert notice["attempts"] == 1  # the claim that never left was not counted


def test_a_notice_whose_answer_was_lost_over_smtp_is_never_sent_again(
    store: Store, settings: Settings
) -> None:
    request_signup(store, settings, "once@example.org", limits=False)

    def on_data(server, session, envelope):
        server.transport.close()  # the message arrived, the answer did not
        return "451 dropped"

    sink = Sink(on_data=on_data)
    with SmtpServer(sink) as server:
        sender = SmtpSender(SmtpConfig("127.0.0.1", server.port, security="none"))
        first = send_owed_notices(store, settings, sender)
        second = send_owed_notices(store, settings, sender)
        sender.close()
    assert first.unknown == 1 and first.sent == 0
    assert second.sent == 0 and second.unknown == 0  # not sent a second time
    assert store.notices.counts()["unknown"] == 1


def test_the_cli_queues_confirmations_and_sends_what_is_owed(
    run, env: dict[str, str], settings: Settings
) -> None:
    sink = Sink()
    smtp = SmtpServer(sink)
    extra = {
        "NEWSLETTER_SENDER": "smtp",
        "NEWSLETTER_SMTP_HOST": "127.0.0.1",
        "NEWSLETTER_SMTP_PORT": str(smtp.port),
        "NEWSLETTER_SMTP_SECURITY": "none",
        "NEWSLETTER_SMTP_TIMEOUT": "2",
        "NEWSLETTER_RETRY_BACKOFF": "0.01",
    }
    down = run("subscribers", "add", "first@example.org", extra_env=extra)
    assert down.exit_code == 3
    assert "0 confirmation mail(s) sent" in down.output and "wait for a retry" in down.output
    with smtp:
        time.sleep(0.05)  # the first one's backoff is over
        up = run("subscribers", "add", "second@example.org", extra_env=extra)
    assert up.exit_code == 0, up.output
    assert "2 confirmation mail(s) sent" in up.output  # the one owed from before, too
    assert sorted(sink.recipients()) == ["first@example.org", "second@example.org"]


def test_queue_notice_is_the_library_call_for_any_kind(store: Store, settings: Settings) -> None:
    result = add_subscriber(store, "ada@example.org", confirmed=True)
    notice = queue_notice(store, result.subscriber.id, "already")
    assert notice.id and notice.kind == "already"
    with pytest.raises(ValueError, match="unknown notice kind"):
        queue_notice(store, result.subscriber.id, "no-such-kind")
    report = send_owed_notices(store, settings, FileSender(settings.outbox))
    assert report.sent == 1
    [row] = store.notices.for_subscriber(result.subscriber.id)
    assert row["status"] == "sent" and row["message_id"]
