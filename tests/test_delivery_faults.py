"""Faults a provider or the machine can throw at a send, each against a real local server (the
API stubs, aiosmtpd) or a real small or read-only filesystem (a tmpfs, where the machine lets
us mount one; otherwise the same OSError injected at the same call), through the real CLI:
per recipient what the server got, what `deliveries` says, and the exit code.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from provider_stubs import PROVIDERS, StubServer
from test_send_support import WEEK, Sink, SmtpServer, add_subscribers, ready_week

from newsletter.delivery.senders import make_sender
from newsletter.settings import Settings, load_settings
from newsletter.store import Store
from newsletter.store._rows import now_iso
from newsletter.weekly import run_weekly

#: only the venv's programs: the pre-flight's SpamAssassin and Chromium checks (tested
#: elsewhere) are skipped, so each send starts at once
ONLY_VENV = {"PATH": str(Path(sys.executable).parent)}


@pytest.fixture
def cli(run):
    """The real CLI, in-process, with PATH narrowed to the venv (see ONLY_VENV)."""

    def invoke(*args: str, extra_env: dict[str, str] | None = None):
        return run(*args, extra_env={**ONLY_VENV, **(extra_env or {})})

    return invoke


def _dispatch_id(store: Store) -> int:
    return store.dispatches.get(str(WEEK))["id"]


def _status(store: Store) -> str:
    return store.dispatches.get(str(WEEK))["status"]


def _add(store: Store, *emails: str) -> None:
    now = now_iso()
    for address in emails:
        store.db.execute(
            "INSERT INTO subscribers (email, name, status, created_at, updated_at)"
            " VALUES (?, NULL, 'active', ?, ?)",
            [address, now, now],
        )


@contextlib.contextmanager
def small_disk(path: Path, size: str) -> Iterator[bool]:
    """A tmpfs of `size` mounted at `path` when the machine allows it (root); False when not,
    and the test injects the same OSError at the same call instead."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        yield False
        return
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        yield False
        return
    try:
        yield True
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def remount(path: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(path)], check=True)


# -- answers that do not parse, per-recipient refusals -----------------------------------------


@pytest.mark.parametrize("provider", ["postmark", "resend"])
def test_a_2xx_whose_body_does_not_parse_is_unknown_never_failed(
    provider: str, cli, store: Store, settings: Settings
) -> None:
    ready_week(store, settings)
    emails = add_subscribers(store, 30)
    stub = PROVIDERS[provider]()
    garbled = {"left": 1}

    def garble(request) -> str | None:
        if request.method == "POST" and garbled["left"]:
            garbled["left"] -= 1
            return "garbage"
        return None

    stub.fault = garble
    with StubServer(stub) as server:
        extra = {**server.env(), "NEWSLETTER_RETRY_BACKOFF": "0.05"}
        first = cli("send", "--week", str(WEEK), extra_env=extra)
        counts = store.deliveries.counts(_dispatch_id(store))
        assert counts["failed"] == 0, first.output  # the provider took them: never "failed"
        if provider == "resend":
            # the same request again, same Idempotency-Key: Resend answers the first answer
            assert first.exit_code == 0, first.output
        else:
            assert first.exit_code == 3 and counts["unknown"] == 30
            assert "does not parse" in first.output
            second = cli("send", "--week", str(WEEK), extra_env=extra)
            assert second.exit_code == 0, second.output
            assert "30 found in the provider's record (sent)" in second.output
    got = stub.recipients()
    assert sorted(got) == sorted(emails) and max(got.values()) == 1
    assert _status(store) == "sent"


@pytest.mark.parametrize("provider", ["postmark", "resend", "sendgrid"])
def test_one_invalid_address_fails_alone(
    provider: str, cli, store: Store, settings: Settings
) -> None:
    """The provider refuses one address (Postmark per message, Resend in permissive mode,
    SendGrid for the whole request, which is split in halves): only that reader fails. An
    address no provider would take never leaves at all."""
    ready_week(store, settings)
    emails = add_subscribers(store, 20)
    _add(store, "nobody@localhost")  # first of the second batch: a refused request is split
    emails += add_subscribers(store, 20, start=20)
    _add(store, "zoë@exämple.org")
    stub = PROVIDERS[provider]()
    with StubServer(stub) as server:
        extra = {**server.env(), "NEWSLETTER_BATCH_SIZE": "20"}
        result = cli("send", "--week", str(WEEK), extra_env=extra)
        assert result.exit_code == 3
        assert "40 sent, 2 failed" in result.output
        assert "nobody@localhost" in result.output  # refused by the provider
        assert "needs SMTPUTF8" in result.output  # zoë@: refused before any hand-off
        again = cli("send", "--week", str(WEEK), "--retry-failed", extra_env=extra)
        assert "0 sent, 2 failed" in again.output
    got = stub.recipients()
    assert sorted(got) == sorted(emails) and max(got.values()) == 1  # the 40, once each
    dispatch_id = _dispatch_id(store)
    assert store.deliveries.failed_by_kind(dispatch_id) == {"permanent": 2, "temporary": 0}
    assert _status(store) == "sent"  # permanent failures are final: nothing is unresolved
    listing = cli("deliveries", "--week", str(WEEK)).output
    assert "(2 permanent: final; 0 temporary: retryable)" in listing
    assert "failed (permanent)" in listing


# -- a broken server: the error threshold, partly sent dispatches -----------------------------


def test_every_data_refused_pauses_the_run_and_leaves_the_rest_queued(
    cli, store: Store, settings: Settings
) -> None:
    ready_week(store, settings)
    emails = add_subscribers(store, 200)
    broken = {"on": True}

    def on_data(server, session, envelope):
        return "554 5.6.0 broken sink" if broken["on"] else None

    sink = Sink(on_data=on_data)
    with SmtpServer(sink) as server:
        env = {**server.env(), "NEWSLETTER_CONCURRENCY": "2"}
        first = cli("send", "--week", str(WEEK), extra_env=env)
        assert first.exit_code == 3
        assert (
            "paused: " in first.output
            and "in a row failed for reasons not about any" in first.output
        )
        assert "NEWSLETTER_ERROR_THRESHOLD=10" in first.output
        counts = store.deliveries.counts(_dispatch_id(store))
        assert counts["queued"] == 200 and counts["failed"] == 0  # nobody was blamed
        assert _status(store) == "partly sent"
        assert "200 still queued: `newsletter send --week 2026-W24` sends them" in first.output
        assert sink.received == []
        broken["on"] = False
        second = cli("send", "--week", str(WEEK), extra_env=env)
    assert second.exit_code == 0, second.output
    got = sink.recipients()
    assert sorted(got) == sorted(emails) and max(got.values()) == 1
    assert _status(store) == "sent"


def test_temporary_failures_out_of_retries_leave_it_partly_sent_until_retried(
    cli, store: Store, settings: Settings
) -> None:
    """A dispatch with readers never reached is never reported done: every later `send` and
    `weekly` says what is unresolved, exits 3 and names the command that resolves it."""
    ready_week(store, settings)
    emails = add_subscribers(store, 8)
    full = {"on": True}
    sink = Sink(on_rcpt=lambda s, sess, a: "452 4.2.2 mailbox full" if full["on"] else None)
    with SmtpServer(sink) as server:
        env = {**server.env(), "NEWSLETTER_RETRY_LIMIT": "2", "NEWSLETTER_RETRY_BACKOFF": "0.01"}
        first = cli("send", "--week", str(WEEK), extra_env=env)
        assert first.exit_code == 3 and "8 failed (8 temporarily, out of retries)" in first.output
        assert _status(store) == "partly sent"
        later = cli("send", "--week", str(WEEK), extra_env=env)
        assert later.exit_code == 3, later.output
        assert "is partly sent; not yet resolved" in later.output
        assert "8 failed temporarily and ran out of retries" in later.output
        assert "`newsletter send --week 2026-W24 --retry-failed`" in later.output
        assert "already sent" not in later.output
        # `weekly` on that week resumes the same way and reports the same (its CLI prints the
        # same summary and exit code; the week is named here, the CLI's is today's)
        smtp = settings.replace(
            sender="smtp",
            smtp_host="127.0.0.1",
            smtp_port=server.port,
            smtp_security="none",
            retry_limit=2,
            retry_backoff=0.01,
        )
        resumed = run_weekly(store, smtp, lambda: make_sender(smtp), week=WEEK, collect_feeds=False)
        assert resumed.outcome == "partly-sent" and not resumed.ok
        assert resumed.delivery is not None
        assert resumed.delivery.unresolved.failed_temporary == 8
        listing = cli("deliveries", "--week", str(WEEK)).output
        assert "(0 permanent: final; 8 temporary: retryable)" in listing
        full["on"] = False
        retried = cli("send", "--week", str(WEEK), "--retry-failed", extra_env=env)
    assert retried.exit_code == 0, retried.output
    assert sorted(sink.recipients()) == sorted(emails)
    assert _status(store) == "sent"
    done = cli("send", "--week", str(WEEK), extra_env=env)
    assert done.exit_code == 0 and "already sent; nothing to do" in done.output


def test_an_unknown_outcome_without_a_stopped_run_is_not_called_in_flight(
    cli, store: Store, settings: Settings
) -> None:
    ready_week(store, settings)
    emails = add_subscribers(store, 3)

    def on_data(server, session, envelope):
        if envelope.rcpt_tos == [emails[1]]:
            server.transport.close()  # the data arrived; the answer never leaves
            return "451 dropped"
        return None

    with SmtpServer(Sink(on_data=on_data)) as server:
        result = cli("send", "--week", str(WEEK), extra_env=server.env())
    assert result.exit_code == 3
    assert "2 sent, 0 failed, 1 unknown" in result.output
    assert "in flight when a run stopped" not in result.output
    assert "connection lost awaiting the answer to DATA" in result.output
    assert "smtp cannot be asked whether a message arrived" in result.output


# -- disk faults: the outbox ------------------------------------------------------------------


def _full_outbox(monkeypatch: pytest.MonkeyPatch, after_bytes: int) -> None:
    """No tmpfs here: the file sender's writes fail with ENOSPC, as a full disk's would."""
    import newsletter.delivery.senders.file as file_sender

    written = {"n": 0}
    real_open = open

    class Full:
        def __init__(self, handle):
            self.handle = handle

        def write(self, data: bytes) -> int:
            if written["n"] + len(data) > after_bytes:
                raise OSError(errno.ENOSPC, "No space left on device")
            written["n"] += len(data)
            return self.handle.write(data)

        def __getattr__(self, name):
            return getattr(self.handle, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

    monkeypatch.setattr(
        file_sender, "open", lambda *a, **k: Full(real_open(*a, **k)), raising=False
    )


def test_a_full_outbox_stops_the_run_cleanly_and_loses_nothing(
    cli, store: Store, settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ready_week(store, settings)
    emails = add_subscribers(store, 30)
    outbox = tmp_path / "small"
    with small_disk(outbox, "400k") as mounted:
        if not mounted:
            _full_outbox(monkeypatch, after_bytes=400_000)
        env = {"NEWSLETTER_OUTBOX": str(outbox)}
        first = cli("send", "--week", str(WEEK), extra_env=env)
        assert first.exit_code == 3, first.output
        assert "stopped: outbox" in first.output and "no space left on the device" in first.output
        folder = outbox / str(WEEK)
        written = sorted(folder.glob("*.eml"))
        assert 0 < len(written) < 30
        assert not list(folder.glob("*.part")), "a half-written file was left"
        counts = store.deliveries.counts(_dispatch_id(store))
        # what was written is sent; what was not is queued again, never `unknown`
        assert counts["sent"] == len(written) and counts["queued"] == 30 - len(written)
        assert counts["unknown"] == counts["sending"] == counts["failed"] == 0
        if mounted:
            remount(outbox, "size=20m")  # the operator frees space
        else:
            monkeypatch.undo()
        second = cli("send", "--week", str(WEEK), extra_env=env)
        assert second.exit_code == 0, second.output
        readers = sorted(p.name[: len(emails[0])] for p in folder.glob("*.eml"))
    assert readers == sorted(emails)  # one file each


def test_a_read_only_outbox_sends_nothing_and_says_so(
    cli, store: Store, settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ready_week(store, settings)
    add_subscribers(store, 5)
    outbox = tmp_path / "ro"
    with small_disk(outbox, "10m") as mounted:
        if mounted:
            remount(outbox, "ro")
        else:
            import newsletter.delivery.senders.file as file_sender

            def read_only(*args, **kwargs):
                raise OSError(errno.EROFS, "Read-only file system")

            monkeypatch.setattr(file_sender, "open", read_only, raising=False)
        result = cli("send", "--week", str(WEEK), extra_env={"NEWSLETTER_OUTBOX": str(outbox)})
    assert result.exit_code == 1, result.output  # nothing could be sent at all
    assert "read-only file system" in result.output
    counts = store.deliveries.counts(_dispatch_id(store))
    assert counts["queued"] == 5 and counts["unknown"] == 0 and counts["failed"] == 0


# -- disk faults: the database ----------------------------------------------------------------


def test_a_full_database_disk_is_one_line_and_nothing_half_written(
    cli, env: dict[str, str], settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    prepared = Store.open(settings.db)
    ready_week(prepared, settings)
    emails = add_subscribers(prepared, 400)
    prepared.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    prepared.close()
    disk = tmp_path / "dbdisk"
    size = settings.db.stat().st_size
    with small_disk(disk, f"{size // 1024 + 200}k") as mounted:
        db = disk / "newsletter.db"
        shutil.copy(settings.db, db)
        if not mounted:
            from newsletter.store.deliveries import Deliveries

            real, calls = Deliveries.record, {"n": 0}

            def full(self, outcomes):
                calls["n"] += 1
                if calls["n"] > 3:
                    raise sqlite3.OperationalError("database or disk is full")
                return real(self, outcomes)

            monkeypatch.setattr(Deliveries, "record", full)
        result = cli("--db", str(db), "send", "--week", str(WEEK))
        assert result.exit_code == 1, result.output
        error = result.output.strip().splitlines()[-1]
        assert error.startswith("Error: ") and str(db) in error
        assert "database or disk is full" in error and "nothing was half-written" in error
        if mounted:
            remount(disk, "size=50m")
        else:
            monkeypatch.undo()
        check = sqlite3.connect(db)
        assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        check.close()
        second = cli("--db", str(db), "send", "--week", str(WEEK))
        assert second.exit_code == 0, second.output
        store = Store.open(db)
        counts = store.deliveries.counts(_dispatch_id(store))
        store.close()
    assert counts["sent"] == 400
    outbox = Path(env["NEWSLETTER_OUTBOX"]) / str(WEEK)
    readers = sorted(p.name[: len(emails[0])] for p in outbox.glob("*.eml"))
    assert readers == sorted(emails)  # what was in flight at the fault was found, not resent


def test_a_damaged_database_is_one_line_naming_the_file(
    cli, env: dict[str, str], settings: Settings
) -> None:
    store = Store.open(settings.db)
    ready_week(store, settings)
    add_subscribers(store, 3000)
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    size = settings.db.stat().st_size
    with open(settings.db, "r+b") as handle:  # garble pages among the subscribers
        handle.seek(size - size // 4)
        handle.write(os.urandom(16384))
    for args in (("subscribers", "list"), ("send", "--week", str(WEEK))):
        result = cli(*args)
        assert result.exit_code == 1, result.output
        error = result.output.strip().splitlines()[-1]  # after send's pre-flight progress
        assert error.startswith("Error: ") and str(settings.db) in error, result.output
        assert "malformed" in error and "the file is damaged" in error
        if args[0] == "subscribers":
            assert len(result.output.strip().splitlines()) == 1


def test_a_read_only_database_is_one_line(cli, env: dict[str, str], tmp_path: Path) -> None:
    settings = load_settings(env, env_file=None)
    Store.open(settings.db).close()
    disk = tmp_path / "rodb"
    with small_disk(disk, "10m") as mounted:
        db = disk / "newsletter.db"
        shutil.copy(settings.db, db)
        if mounted:
            remount(disk, "ro")
        elif os.geteuid() != 0:
            db.chmod(0o444)
            disk.chmod(0o555)
        else:
            pytest.skip("root without mount: a read-only file cannot be made here")
        result = cli("--db", str(db), "subscribers", "add", "ada@example.org", "--confirmed")
        if not mounted:
            disk.chmod(0o755)
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and str(db) in lines[0]
    assert "readonly" in lines[0] or "read-only" in lines[0]
