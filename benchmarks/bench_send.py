"""Sending: `newsletter send` to 100,000 subscribers against local sinks, beside the ceiling.

On 2 cores the sink is the bottleneck, so each figure is a ratio against a raw client measured
in the same run: identical pre-built message bytes (or API payloads) over the same number of
reused connections to the same sink. The sink (aiosmtpd) and the API stub run in processes of
their own; `send` runs as the real CLI in a subprocess, so its peak memory is its own.
`BENCH_SEND_N` sets the subscriber count (default 100,000).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

title = "Sending (SMTP and email API)"

N = int(os.environ.get("BENCH_SEND_N", "100000"))
RAW_N = min(N, 20_000)
NAIVE_N = 300
CONNECTIONS = 4
API_BATCH = 100
ROOT = Path(__file__).resolve().parent.parent
NEWSLETTER = Path(sys.executable).parent / "newsletter"
WEEK = "2026-W24"


# -- the sink and the stub, each in a process of its own ----------------------------------------


def _sink(port: int) -> None:
    from aiosmtpd.controller import Controller

    class Discard:
        async def handle_DATA(self, server, session, envelope):
            return "250 2.0.0 Ok: queued"

    controller = Controller(Discard(), hostname="127.0.0.1", port=port, data_size_limit=0)
    controller.start()
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    controller.stop()


def _stub(port: int) -> None:
    """Answers like Resend's /emails/batch: one id per email in the posted list."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            count = body.count(b'"subject":')
            answer = json.dumps({"data": [{"id": f"id{i}"} for i in range(count)]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: object) -> None:
            pass

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn(kind: str, module: str = "benchmarks.bench_send") -> tuple[subprocess.Popen, int]:
    """`python -m module kind port` in a process of its own, once it listens."""
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", module, kind, str(port)], cwd=ROOT)
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


# -- a week ready to send, with N subscribers ---------------------------------------------------


def _prepare(folder: Path) -> Path:
    from newsletter.demo import sample_dir
    from newsletter.dispatch.build import approve, build_dispatch
    from newsletter.settings import load_settings
    from newsletter.signals.annotations import import_annotations
    from newsletter.signals.collect import collect
    from newsletter.signals.sources_file import read_sources_file
    from newsletter.store import Store
    from newsletter.store._rows import now_iso
    from newsletter.weeks import Week

    db = folder / "ready.db"
    settings = load_settings({"NEWSLETTER_DB": str(db)}, env_file=None)
    store = Store.open(db)
    sample = sample_dir()
    for spec in read_sources_file(sample / "sources.toml"):
        store.sources.add(spec.name, spec.url, category=spec.category, label=spec.label)
    collect(store, now=datetime(2026, 6, 14, tzinfo=UTC))
    import_annotations(store, sorted((sample / "annotations").iterdir()))
    build_dispatch(store, settings, Week.parse(WEEK))
    approve(store, settings, Week.parse(WEEK))
    now = now_iso()
    with store.transaction():
        store.db.conn.executemany(
            "INSERT INTO subscribers (email, name, status, created_at, updated_at)"
            " VALUES (?, ?, 'active', ?, ?)",
            ((f"reader{i:06d}@example.com", f"Reader {i}", now, now) for i in range(N)),
        )
    store.secret_key()
    store.close()
    return db


def _env(db: Path, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update(
        {
            "NEWSLETTER_DB": str(db),
            "NEWSLETTER_CONCURRENCY": str(CONNECTIONS),
            "NEWSLETTER_LOG_LEVEL": "warning",
            "NEWSLETTER_SECRET_KEY": "bench-secret-key-0123456789",
            **extra,
        }
    )
    return env


_MEASURED = (
    "import resource, subprocess, sys; done = subprocess.run(sys.argv[1:]);"
    " print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr);"
    " sys.exit(done.returncode)"
)


def _send(ready: Path, folder: Path, name: str, extra: dict[str, str]) -> tuple[float, int, float]:
    """`newsletter send` on a fresh copy of the ready database, under a wrapper that reports its
    peak RSS: (messages/s, messages sent, peak MB)."""
    db = folder / f"{name}.db"
    shutil.copy(ready, db)
    result = subprocess.run(
        [sys.executable, "-c", _MEASURED, str(NEWSLETTER), "send", "--week", WEEK],
        env=_env(db, extra),
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
    )
    match = re.search(r"(\d+) sent, (\d+) failed.* in ([\d.]+) s", result.stdout)
    if result.returncode != 0 or not match:
        raise RuntimeError(f"send ({name}) failed: {result.stdout}\n{result.stderr}")
    sent, seconds = int(match[1]), float(match[3])
    peak_mb = int(result.stderr.strip().splitlines()[-1]) / 1024
    return sent / seconds, sent, peak_mb


# -- the raw ceilings ---------------------------------------------------------------------------


def _message_bytes(ready: Path) -> tuple[bytes, object]:
    from newsletter.delivery.compose import Composer
    from newsletter.dispatch.build import load_dispatch
    from newsletter.dispatch.render import render_dispatch
    from newsletter.models import Subscriber
    from newsletter.settings import load_settings
    from newsletter.store import Store
    from newsletter.weeks import Week

    settings = load_settings({"NEWSLETTER_DB": str(ready)}, env_file=None)
    store = Store.open(ready)
    dispatch = load_dispatch(store, settings, Week.parse(WEEK))
    composer = Composer(render_dispatch(dispatch, settings), settings, "k" * 20, WEEK)
    store.close()
    message = composer.compose(Subscriber(1, "reader000001@example.com", "Reader 1", "active"))
    return message.as_bytes(), composer


def _raw_smtp(port: int, data: bytes, total: int) -> float:
    """smtplib, CONNECTIONS threads each on one reused connection, the same bytes each time."""
    per = total // CONNECTIONS

    def worker() -> None:
        smtp = smtplib.SMTP("127.0.0.1", port)
        smtp.ehlo()
        for i in range(per):
            smtp.sendmail("brief@example.org", [f"reader{i:06d}@example.com"], data)
        smtp.quit()

    threads = [threading.Thread(target=worker) for _ in range(CONNECTIONS)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return per * CONNECTIONS / (time.perf_counter() - started)


def _raw_api(port: int, composer: object, total: int) -> float:
    """The same httpx client the senders use, posting one pre-built batch payload again."""
    from newsletter.delivery.senders.http import encode_json, make_client
    from newsletter.delivery.senders.resend import ResendSender
    from newsletter.models import Subscriber

    sender = ResendSender("key", make_client(f"http://127.0.0.1:{port}"))
    messages = [
        composer.compose(Subscriber(i, f"r{i}@example.com", f"R {i}", "active"))  # type: ignore[attr-defined]
        for i in range(API_BATCH)
    ]
    payload = encode_json([sender.payload(m) for m in messages])
    batches = total // API_BATCH // CONNECTIONS

    def worker() -> None:
        for _ in range(batches):
            response = sender.client.post(
                "/emails/batch",
                content=payload,
                headers={"Authorization": "Bearer key", "Content-Type": "application/json"},
            )
            response.raise_for_status()

    threads = [threading.Thread(target=worker) for _ in range(CONNECTIONS)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sender.close()
    return batches * CONNECTIONS * API_BATCH / (time.perf_counter() - started)


# -- costs per message, and the naive way --------------------------------------------------------


def _per_message_costs(ready: Path, folder: Path, key_file: Path) -> dict[str, float]:
    from newsletter.delivery.dkim import DkimSigner
    from newsletter.models import Subscriber
    from newsletter.store import Store
    from newsletter.store.deliveries import Claim, Outcome

    _, composer = _message_bytes(ready)
    count = 2000
    subs = [
        Subscriber(i, f"reader{i:06d}@example.com", f"Reader {i}", "active") for i in range(count)
    ]
    started = time.perf_counter()
    built = [composer.compose(s).as_bytes() for s in subs]  # type: ignore[attr-defined]
    build = (time.perf_counter() - started) / count
    signer = DkimSigner.from_file(key_file, "bench", "example.org")
    started = time.perf_counter()
    for data in built[:1000]:
        signer.sign(data)
    sign = (time.perf_counter() - started) / 1000
    db = folder / "record.db"
    shutil.copy(ready, db)
    store = Store.open(db)
    dispatch_id = store.dispatches.get(WEEK)["id"]
    store.deliveries.queue(dispatch_id)
    rows = store.deliveries.fresh(dispatch_id, count)
    started = time.perf_counter()
    for row in rows:
        message_id = f"<{row.delivery_id}@example.org>"
        claim = Claim(row.delivery_id, message_id, f"nl-{row.delivery_id}")
        store.deliveries.claim([claim], now=time.time())
        store.deliveries.record([Outcome(row.delivery_id, "sent", provider_id="250 ok")])
    record = (time.perf_counter() - started) / len(rows)
    store.close()
    return {"build": build * 1000, "sign": sign * 1000, "record": record * 1000}


def _naive(ready: Path, port: int) -> float:
    """A new SMTP connection and a full render (Jinja2 + MJML) for every message."""
    from newsletter.delivery.compose import Composer
    from newsletter.dispatch.build import load_dispatch
    from newsletter.dispatch.render import render_dispatch
    from newsletter.models import Subscriber
    from newsletter.settings import load_settings
    from newsletter.store import Store
    from newsletter.weeks import Week

    settings = load_settings({"NEWSLETTER_DB": str(ready)}, env_file=None)
    store = Store.open(ready)
    dispatch = load_dispatch(store, settings, Week.parse(WEEK))
    store.close()
    started = time.perf_counter()
    for i in range(NAIVE_N):
        composer = Composer(render_dispatch(dispatch, settings), settings, "k" * 20, WEEK)
        message = composer.compose(Subscriber(i, f"reader{i:06d}@example.com", "R", "active"))
        with smtplib.SMTP("127.0.0.1", port) as smtp:
            smtp.sendmail("brief@example.org", [message.to_addr], message.as_bytes())
    return NAIVE_N / (time.perf_counter() - started)


def _key(folder: Path) -> Path:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = folder / "dkim.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


def _note(text: str) -> None:
    """Each figure as soon as it is measured (the whole run takes minutes)."""
    print(f"  {text}", file=sys.stderr, flush=True)


def run() -> str:
    folder = Path(tempfile.mkdtemp(prefix="bench-send-"))
    sink, sink_port = _spawn("sink")
    stub, stub_port = _spawn("stub")
    try:
        ready = _prepare(folder)
        key_file = _key(folder)
        data, composer = _message_bytes(ready)
        smtp_env = {
            "NEWSLETTER_SENDER": "smtp",
            "NEWSLETTER_SMTP_HOST": "127.0.0.1",
            "NEWSLETTER_SMTP_PORT": str(sink_port),
            "NEWSLETTER_SMTP_SECURITY": "none",
            "NEWSLETTER_SMTP_MESSAGES_PER_CONNECTION": str(N),
        }
        costs = _per_message_costs(ready, folder, key_file)
        _note(f"per message: {costs}")
        naive = _naive(ready, sink_port)
        _note(f"naive: {naive:.0f} msg/s")
        raw_before = _raw_smtp(sink_port, data, RAW_N)
        _note(f"raw SMTP: {raw_before:.0f} msg/s")
        plain, plain_sent, peak_plain = _send(ready, folder, "plain", smtp_env)
        _note(f"send, SMTP: {plain:.0f} msg/s, peak {peak_plain:.0f} MB")
        signed, _, peak_dkim = _send(
            ready,
            folder,
            "dkim",
            {
                **smtp_env,
                "NEWSLETTER_DKIM_KEY_FILE": str(key_file),
                "NEWSLETTER_DKIM_SELECTOR": "bench",
            },
        )
        _note(f"send, SMTP + DKIM: {signed:.0f} msg/s, peak {peak_dkim:.0f} MB")
        raw_after = _raw_smtp(sink_port, data, RAW_N)
        _note(f"raw SMTP again: {raw_after:.0f} msg/s")
        raw = (raw_before + raw_after) / 2
        api_raw = _raw_api(stub_port, composer, RAW_N)
        _note(f"raw API: {api_raw:.0f} msg/s")
        api, _, peak_api = _send(
            ready,
            folder,
            "api",
            {
                "NEWSLETTER_SENDER": "resend",
                "RESEND_API_KEY": "bench-key",
                "NEWSLETTER_RESEND_API_URL": f"http://127.0.0.1:{stub_port}",
            },
        )
        _note(f"send, API: {api:.0f} msg/s, peak {peak_api:.0f} MB")
        api_one, _, _ = _send(
            ready,
            folder,
            "api-one",
            {
                "NEWSLETTER_SENDER": "resend",
                "RESEND_API_KEY": "bench-key",
                "NEWSLETTER_RESEND_API_URL": f"http://127.0.0.1:{stub_port}",
                "NEWSLETTER_SEND_PROCESSES": "1",
            },
        )
        _note(f"send, API, one process: {api_one:.0f} msg/s")
        peak = max(peak_plain, peak_dkim, peak_api)
    finally:
        for proc in (sink, stub):
            proc.terminate()
            proc.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)

    def mark(ok: bool) -> str:
        return "✓" if ok else "✗ below target"

    rows = [
        ("raw SMTP client (ceiling)", raw, "1.00", ""),
        (
            f"`send`, SMTP, no DKIM ({plain_sent:,} sent)",
            plain,
            f"{plain / raw:.2f}",
            f"≥ 0.75 {mark(plain / raw >= 0.75)}",
        ),
        (
            "`send`, SMTP, DKIM (OpenSSL RSA-2048)",
            signed,
            f"{signed / raw:.2f}",
            f"≥ 0.50 {mark(signed / raw >= 0.5)}",
        ),
        ("raw batch API client (ceiling)", api_raw, "1.00", ""),
        (
            f"`send`, batch API (Resend shape, {API_BATCH} a call; 2 processes, the default)",
            api,
            f"{api / api_raw:.2f}",
            f"≥ 0.90 {mark(api / api_raw >= 0.9)}",
        ),
        (
            "`send`, batch API, one process (NEWSLETTER_SEND_PROCESSES=1)",
            api_one,
            f"{api_one / api_raw:.2f}",
            "",
        ),
        (
            f"naive: full render + new connection per message ({NAIVE_N} messages)",
            naive,
            f"{naive / raw:.2f}",
            f"`send` is {plain / naive:.1f}× faster",
        ),
    ]
    table = "\n".join(f"| {a} | {b:.0f} | {c} | {d} |" for a, b, c, d in rows)
    return f"""## {title}

{N:,} subscribers, {len(data) / 1024:.0f} KB messages, {CONNECTIONS} connections, sink and stub
on 127.0.0.1 in processes of their own; `send` is the real CLI in a subprocess (split over
two processes, each with half of the connections: the default from 2,000 readers). The raw SMTP
ceiling (smtplib sending one pre-built message over {CONNECTIONS} reused connections, {RAW_N:,}
messages, measured before and after the sends: {raw_before:.0f} and {raw_after:.0f} msg/s) and
the raw API ceiling (the same httpx client posting one pre-built {API_BATCH}-message batch) are
measured in this run.

| path | msg/s | ratio to its ceiling | target |
| --- | ---: | ---: | --- |
{table}

Per message, measured in-process: building it (compose + bytes) {costs["build"]:.3f} ms,
DKIM signing {costs["sign"]:.3f} ms, recording it (claim before and result after, two durable
commits) {costs["record"]:.3f} ms.

Peak memory of a `send` process (its own max RSS): {peak_plain:.0f} MB SMTP,
{peak_dkim:.0f} MB SMTP with DKIM, {peak_api:.0f} MB batch API; target under 300 MB
{mark(peak < 300)}: subscribers are streamed by id, never all loaded.
"""


if __name__ == "__main__":
    kind, port_text = sys.argv[1], sys.argv[2]
    {"sink": _sink, "stub": _stub}[kind](int(port_text))
