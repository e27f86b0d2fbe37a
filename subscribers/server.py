"""Running the service: waitress (a production WSGI server) in one or more worker processes
sharing one listening socket, or Werkzeug's reloader for development.

Workers are forked after the socket is bound; each builds its own app (and so its own
database connections and notice threads). Rate limits and the notice queue live in SQLite, so
they hold across workers. A worker never outlives its parent: the kernel sends it SIGTERM when
the parent dies (PR_SET_PDEATHSIG on Linux), and a thread watching the parent does the same
elsewhere, so a SIGKILLed `serve` leaves no process holding the port.

waitress is configured from our settings (`waitress_options`): it reads X-Forwarded-For only
from the trusted proxy (and then takes the client `NEWSLETTER_PROXY_HOPS` entries from the
right), drops proxy headers from anyone else, refuses bodies over our own limit before reading
them (its default spools up to 1 GiB to a temporary file first), closes connections that stall
and keeps enough of them open that slow clients cannot starve the others (`/healthz`).
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import resource
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

import waitress
from flask import Flask
from waitress.server import BaseWSGIServer, MultiSocketServer

from newsletter.dispatch.render import templates_dir
from newsletter.settings import Settings
from newsletter.store import Store
from subscribers.app import MAX_BODY_BYTES, create_app
from subscribers.clicks import Settler, recorder_of, settle_all

#: request line and headers: our URLs, cookies and signatures fit in far less
MAX_HEADER_BYTES = 32 * 1024


def waitress_options(settings: Settings) -> dict[str, Any]:
    """waitress's adjustments for these settings (see the module docstring)."""
    options: dict[str, Any] = {
        "max_request_body_size": MAX_BODY_BYTES,
        "max_request_header_size": MAX_HEADER_BYTES,
        "channel_timeout": settings.web_channel_timeout,
        # stalled connections are looked for this often: well within the timeout
        "cleanup_interval": max(1, min(30, settings.web_channel_timeout // 2)),
        "connection_limit": settings.web_connection_limit,
        "clear_untrusted_proxy_headers": True,
        "ident": "newsletter",
    }
    if settings.proxy_hops and settings.trusted_proxy:
        options.update(
            trusted_proxy=settings.trusted_proxy,
            trusted_proxy_count=settings.proxy_hops,
            trusted_proxy_headers={"x-forwarded-for", "x-forwarded-proto"},
        )
    return options


def make_server(
    app: Flask, settings: Settings, **kwargs: Any
) -> BaseWSGIServer | MultiSocketServer:
    """The waitress server `serve` runs (tests run the same one); `kwargs`: sockets or
    host/port, threads, and any other waitress adjustment."""
    _allow_open_files(settings.web_connection_limit + 256)
    return waitress.create_server(app, **{**waitress_options(settings), **kwargs})


def _allow_open_files(wanted: int) -> None:
    """Raise this process's open-file limit towards `wanted` (a connection is a file)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        ceiling = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        if ceiling > soft:
            resource.setrlimit(resource.RLIMIT_NOFILE, (ceiling, hard))


def serve(
    settings: Settings,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 2,
    threads: int = 8,
    reload: bool = False,
    echo: Callable[[str], None] = print,
) -> None:
    if reload:
        from werkzeug.middleware.proxy_fix import ProxyFix
        from werkzeug.serving import run_simple

        extra = [str(p) for p in (templates_dir() / "web").rglob("*") if p.is_file()]
        echo(f"Development server with reload on http://{host}:{port}")
        app = create_app(settings)
        if settings.proxy_hops:  # waitress does this in production
            app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.proxy_hops)  # type: ignore[method-assign]
        run_simple(host, port, app, use_reloader=True, extra_files=extra)
        return
    Store.open(settings.db).close()  # migrate once, before any worker opens the file
    settle_all(settings)  # clicks a stopped server left queued, and old raw rows folded
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family, backlog=2048)
    bound = sock.getsockname()[1]
    echo(f"Serving on http://{host}:{bound} ({workers} worker(s) x {threads} threads)")
    sys.stdout.flush()
    if workers == 1:
        _worker(settings, sock, threads)
        settle_all(settings)
        return
    _supervise(settings, sock, workers, threads)


#: prctl(2) option: the signal this process gets when its parent dies
PR_SET_PDEATHSIG = 1


def _die_with(parent: int) -> None:
    """SIGTERM to this process when `parent` is gone (it finishes its mails, then exits)."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        except (OSError, AttributeError):
            pass  # the watcher below still does it
    if os.getppid() != parent:  # the parent died before the kernel could be told
        os.kill(os.getpid(), signal.SIGTERM)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="watch-parent", daemon=True).start()


def _worker(
    settings: Settings, sock: socket.socket, threads: int, parent: int | None = None
) -> None:
    def stop(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    if parent is not None:
        _die_with(parent)
    # waitress warns on every queued request; under load that is a log line per request
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    app = create_app(settings, migrate=False)
    server = make_server(app, settings, sockets=[sock], threads=threads)
    try:
        server.run()
    except (SystemExit, KeyboardInterrupt):
        pass
    finally:
        server.close()
        app.extensions["newsletter"].mailer.shutdown()  # send what was promised
        recorder_of(app).close()  # write every click counted so far


def _supervise(settings: Settings, sock: socket.socket, workers: int, threads: int) -> None:
    context = multiprocessing.get_context("fork")
    stopping = False

    def start() -> multiprocessing.process.BaseProcess:
        process = context.Process(target=_worker, args=(settings, sock, threads, os.getpid()))
        process.start()
        return process

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    settler = Settler(settings)  # before the fork: the workers leave classifying clicks to us
    processes = [start() for _ in range(workers)]
    while not stopping:
        for i, process in enumerate(processes):
            process.join(timeout=0.2)
            if not process.is_alive() and not stopping:
                processes[i] = start()  # a crashed worker is replaced
        settler.tick()
    for process in processes:
        if process.is_alive() and process.pid:
            process.terminate()
    for process in processes:
        process.join(timeout=10)
    settler.close()  # every worker has written its clicks: classify the last ones
