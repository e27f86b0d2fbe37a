"""`GET /archive/`: the static web archive `newsletter archive build` writes, served as files.

Its pages are our own rendered dispatches (inline styles, no scripts), so they get a CSP that
allows inline styles and still no script. Only regular files inside the folder are served:
the path is walked one component at a time without following symbolic links (so neither a
link nor a race swapping one in can reach outside), and no component may start with a dot
(`.env`, `.git/`, the build's `.archive.old`).
"""

from __future__ import annotations

import mimetypes
import os
import stat
from pathlib import Path
from typing import IO, Any

from flask import Blueprint, Response, redirect, request, send_file

from subscribers.app import page, web

blueprint = Blueprint("archive", __name__)

ARCHIVE_CSP = (
    "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' https: data:; "
    "frame-ancestors 'none'; base-uri 'none'"
)
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@blueprint.get("/archive/", defaults={"name": ""})
@blueprint.get("/archive/<path:name>")
def index(name: str) -> Any:
    folder = web().settings.web_archive_dir
    if not (folder / "index.html").is_file():
        return page(
            "No past issues yet",
            "The archive appears here once the first dispatch has been sent.",
            status=404,
            back=True,
        )
    parts = name.split("/")
    if parts[-1] == "":
        parts[-1] = "index.html"
    if any(not part or part.startswith(".") for part in parts):
        return _not_found()
    opened = _open_inside(folder, parts)
    if opened is None:
        return _not_found()
    handle, info = opened
    if handle is None:  # a folder
        return redirect(f"{request.path}/", code=308)
    mimetype = mimetypes.guess_type(parts[-1])[0] or "application/octet-stream"
    response: Response = send_file(
        handle,
        mimetype=mimetype,
        max_age=300,
        conditional=True,
        etag=f"{info.st_mtime_ns:x}-{info.st_size:x}",
        last_modified=info.st_mtime,
    )
    response.headers["Content-Security-Policy"] = ARCHIVE_CSP
    return response


def _not_found() -> Any:
    return page("Page not found", "There is nothing at this address.", status=404, back=True)


def _open_inside(root: Path, parts: list[str]) -> tuple[IO[bytes] | None, os.stat_result] | None:
    """The regular file at `parts` under `root` (opened without following any link) and its
    status; no file for a folder; None for anything else (missing, a link, a device...)."""
    try:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        for part in parts[:-1]:
            inner = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = inner
        target = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
    except OSError:  # missing, a symbolic link (ELOOP), not a folder...
        return None
    finally:
        os.close(fd)
    info = os.fstat(target)
    if stat.S_ISREG(info.st_mode):
        return os.fdopen(target, "rb"), info
    os.close(target)
    return (None, info) if stat.S_ISDIR(info.st_mode) else None
