"""Forked worker processes that die with their parent and hand back one picklable result.

A send split over processes (`deliver`) forks after its preparation, so each worker starts with
the dispatch rendered and the rows queued, in microseconds rather than the second a fresh
interpreter takes to import and render. A worker must never outlive the process that holds the
send lease: `PR_SET_PDEATHSIG` kills it when its parent dies (a `kill -9` of `send` stops every
hand-off at once, as for one process). Linux only; elsewhere a send stays in one process.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import select
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: prctl(2) option: the signal a process gets when its parent thread dies
_PR_SET_PDEATHSIG = 1


def supported() -> bool:
    return sys.platform.startswith("linux") and hasattr(os, "fork")


@dataclass
class Child:
    index: int
    pid: int
    fd: int
    data: list[bytes] = field(default_factory=list)
    done: bool = False
    result: Any = None
    #: what went wrong in it: the exception it raised, or why it ended with no answer
    error: BaseException | None = None


def start(count: int, work: Callable[[int], Any]) -> list[Child]:
    """Fork `count` workers, each running `work(index)` and handing back what it returns.

    Called with no other thread running (a fork copies only the calling thread).
    """
    parent = os.getpid()
    children: list[Child] = []
    try:
        for index in range(count):
            read, write = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(read)
                _run_child(parent, index, work, write)  # never returns
            os.close(write)
            children.append(Child(index, pid, read))
    except BaseException:  # no fork (EAGAIN, ENOMEM): stop those already working, then say so
        stop_all(children)
        raise
    return children


def _run_child(parent: int, index: int, work: Callable[[int], Any], fd: int) -> None:
    code = 0
    try:
        _die_with(parent)
        # a progress display's stand-ins for these belong to the parent (their locks too)
        sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
        answer = ("ok", work(index))
    except BaseException as exc:  # any end of a worker is reported
        answer, code = ("error", exc), 1
    try:
        try:
            payload = pickle.dumps(answer)
        except Exception as exc:  # an answer that does not pickle
            payload = pickle.dumps(("error", RuntimeError(f"{answer[1]!r} ({exc})")))
        view = memoryview(payload)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os._exit(code)


def _die_with(parent: int) -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # it died before the line above took effect
        os._exit(1)


def wait(children: list[Child], timeout: float) -> bool:
    """Read what the workers have written, for at most `timeout` seconds; True once every one
    has ended (each with its `result` or its `error`)."""
    running = {c.fd: c for c in children if not c.done}
    if not running:
        return True
    try:
        ready, _, _ = select.select(list(running), [], [], timeout)
    except InterruptedError:
        ready = []
    for fd in ready:
        child = running[fd]
        chunk = os.read(fd, 1 << 16)
        if chunk:
            child.data.append(chunk)
        else:
            _ended(child)
    return all(c.done for c in children)


def _ended(child: Child) -> None:
    os.close(child.fd)
    _, status = os.waitpid(child.pid, 0)
    child.done = True
    try:
        # written by our own fork, through a pipe only it and we hold
        kind, value = pickle.loads(b"".join(child.data))  # noqa: S301
    except Exception:  # killed before it could answer
        why = (
            f"killed by signal {os.WTERMSIG(status)}"
            if os.WIFSIGNALED(status)
            else f"exit code {os.waitstatus_to_exitcode(status)}"
        )
        child.error = RuntimeError(f"send process {child.pid} ended with no report ({why})")
        return
    if kind == "ok":
        child.result = value
    else:
        child.error = value


def signal_all(children: list[Child], signum: int) -> None:
    for child in children:
        if not child.done:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signum)


def stop_all(children: list[Child]) -> None:
    """SIGTERM to every worker still running, then wait until each has ended."""
    signal_all(children, signal.SIGTERM)
    while not wait(children, 0.5):
        pass
