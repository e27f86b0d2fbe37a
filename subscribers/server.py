"""Running the service: waitress (a production WSGI server) in one or more worker processes
sharing one listening socket, or Werkzeug's reloader for development.

Workers are forked after the socket is bound; each builds its own app (and so its own
database connections and notice threads). Rate limits and the notice queue live in SQLite, so
they hold across workers. A worker never outlives its parent: the kernel sends it SIGTERM when
the parent dies (PR_SET_PDEATHSIG on Linux), and a thread watching the parent does the same
elsewhere, so a SIGKILLed `serve` leaves no process holding the port.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType

import waitress

from newsletter.dispatch.render import templates_dir
from newsletter.settings import Settings
from newsletter.store import Store
from subscribers.app import create_app


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
        from werkzeug.serving import run_simple

        extra = [str(p) for p in (templates_dir() / "web").rglob("*") if p.is_file()]
        echo(f"Development server with reload on http://{host}:{port}")
        run_simple(host, port, create_app(settings), use_reloader=True, extra_files=extra)
        return
    Store.open(settings.db).close()  # migrate once, before any worker opens the file
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family, backlog=2048)
    bound = sock.getsockname()[1]
    echo(f"Serving on http://{host}:{bound} ({workers} worker(s) x {threads} threads)")
    sys.stdout.flush()
    if workers == 1:
        _worker(settings, sock, threads)
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
    server = waitress.create_server(app, sockets=[sock], threads=threads, ident="newsletter")
    try:
        server.run()
    except (SystemExit, KeyboardInterrupt):
        pass
    finally:
        server.close()
        app.extensions["newsletter"].mailer.shutdown()  # send what was promised


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
    processes = [start() for _ in range(workers)]
    while not stopping:
        for i, process in enumerate(processes):
            process.join(timeout=0.2)
            if not process.is_alive() and not stopping:
                processes[i] = start()  # a crashed worker is replaced
    for process in processes:
        if process.is_alive() and process.pid:
            process.terminate()
    for process in processes:
        process.join(timeout=10)
