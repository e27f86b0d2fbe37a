"""`GET /archive/`: the static web archive `newsletter archive build` writes, served as files.

Its pages are our own rendered dispatches (inline styles, no scripts), so they get a CSP that
allows inline styles and still no script.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, send_from_directory

from subscribers.app import page, web

blueprint = Blueprint("archive", __name__)

ARCHIVE_CSP = (
    "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' https: data:; "
    "frame-ancestors 'none'; base-uri 'none'"
)


@blueprint.get("/archive/", defaults={"name": "index.html"})
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
    if name.endswith("/"):
        name += "index.html"
    response: Response = send_from_directory(folder.resolve(), name, max_age=300)
    response.headers["Content-Security-Policy"] = ARCHIVE_CSP
    return response
