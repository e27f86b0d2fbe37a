"""Sending through Amazon SES: `newsletter send` against an SES API v2 stub on 127.0.0.1.

SES takes one message a call, so the rate is one signed HTTP request per reader. The stub runs
in a process of its own and answers `{"MessageId": ...}` the way SendEmail does; `send` is the
real CLI in a subprocess. Beside it, the ceiling of the same stub: the same httpx client with
the same number of threads posting one pre-built, pre-signed request over and over. Per
message, in-process: the SigV4 signature (botocore) and the body (raw MIME, base64, JSON).
`BENCH_SES_N` sets the subscriber count (default 5,000).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.bench_send import CONNECTIONS, _message_bytes, _prepare, _send, _spawn

title = "Sending through Amazon SES (API v2 stub)"

N = int(os.environ.get("BENCH_SES_N", "5000"))
RAW_N = min(N, 5000)
CREDENTIALS = {
    "NEWSLETTER_SENDER": "ses",
    "AWS_ACCESS_KEY_ID": "AKIDBENCH0000EXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "bench/secret/key/EXAMPLE",
    "AWS_REGION": "eu-west-1",
}


def _stub(port: int) -> None:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    count = [0]
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            with lock:
                count[0] += 1
                number = count[0]
            answer = json.dumps({"MessageId": f"0102018c-bench-{number:08d}-000000"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    signal.sigwait({signal.SIGTERM, signal.SIGINT})


def _sender(url: str) -> object:
    from newsletter.delivery.senders import make_sender
    from newsletter.settings import load_settings

    settings = load_settings(
        {**CREDENTIALS, "NEWSLETTER_SES_API_URL": url, "NEWSLETTER_DB": ":memory:"}, env_file=None
    )
    return make_sender(settings)


def _raw(url: str, ready: Path, total: int) -> float:
    """CONNECTIONS threads posting one request, signed once, through one httpx client."""
    import msgspec

    from newsletter.delivery.senders.http import make_client

    _, composer = _message_bytes(ready)
    sender = _sender(url)
    message = composer.compose(_reader())  # type: ignore[attr-defined]
    content = msgspec.json.encode(sender.payload(message))  # type: ignore[attr-defined]
    headers = sender.signer.headers(  # type: ignore[attr-defined]
        "POST",
        sender.url,
        content,
        {"Content-Type": "application/json"},  # type: ignore[attr-defined]
    )
    client = make_client(url)
    left = [total]
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                if left[0] <= 0:
                    return
                left[0] -= 1
            client.post("/v2/email/outbound-emails", content=content, headers=headers)

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(CONNECTIONS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    took = time.perf_counter() - started
    client.close()
    return total / took


def _reader() -> object:
    from newsletter.models import Subscriber

    return Subscriber(7, "reader000007@example.com", "Reader 7", "active")


def _per_message(url: str, ready: Path) -> tuple[float, float]:
    """Microseconds a message: SigV4 signing, and the SendEmail body (MIME, base64, JSON)."""
    import msgspec

    _, composer = _message_bytes(ready)
    sender = _sender(url)
    message = composer.compose(_reader())  # type: ignore[attr-defined]
    content = msgspec.json.encode(sender.payload(message))  # type: ignore[attr-defined]
    rounds = 500
    started = time.perf_counter()
    for _ in range(rounds):
        sender.signer.headers(  # type: ignore[attr-defined]
            "POST",
            sender.url,
            content,
            {"Content-Type": "application/json"},  # type: ignore[attr-defined]
        )
    signing = (time.perf_counter() - started) / rounds * 1e6
    started = time.perf_counter()
    for _ in range(rounds):
        msgspec.json.encode(sender.payload(composer.compose(_reader())))  # type: ignore[attr-defined]
    body = (time.perf_counter() - started) / rounds * 1e6
    return signing, body


def run() -> str:
    stub, port = _spawn("stub", "benchmarks.bench_ses")
    url = f"http://127.0.0.1:{port}"
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            ready = _prepare_n(folder)
            ceiling = _raw(url, ready, RAW_N)
            rate, sent, peak = _send(
                ready, folder, "ses", {**CREDENTIALS, "NEWSLETTER_SES_API_URL": url}
            )
            signing, body = _per_message(url, ready)
    finally:
        stub.send_signal(signal.SIGTERM)
        stub.wait(timeout=10)
    ratio = rate / ceiling
    return "\n".join(
        [
            f"## {title}",
            "",
            f"{sent:,} subscribers, one SendEmail call each (raw MIME, base64, SigV4), "
            f"{CONNECTIONS} threads, the stub in a process of its own on 127.0.0.1.",
            "",
            "| path | msg/s | ratio to its ceiling |",
            "| --- | ---: | ---: |",
            f"| raw: one pre-signed request, {RAW_N:,} times (ceiling) | {ceiling:.0f} | 1.00 |",
            f"| `send` through the SES sender ({sent:,} sent) | {rate:.0f} | {ratio:.2f} |",
            "",
            f"Per message, in-process: SigV4 signature {signing:.0f} µs (botocore), SendEmail"
            f" body {body:.0f} µs (compose, bytes, base64, JSON). Peak memory of the `send`"
            f" process: {peak:.0f} MB. A real account sends at most its SES sending quota per"
            " second: set NEWSLETTER_RATE to it.",
            "",
        ]
    )


def _prepare_n(folder: Path) -> Path:
    import benchmarks.bench_send as send_bench

    previous, send_bench.N = send_bench.N, N
    try:
        return _prepare(folder)
    finally:
        send_bench.N = previous


if __name__ == "__main__":
    if sys.argv[1:2] == ["stub"]:
        _stub(int(sys.argv[2]))
    else:
        print(run())
