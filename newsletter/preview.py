"""The editor's view of a dispatch: the email as one sample reader will see it, written to a
file, served on localhost (phone and desktop widths side by side, reloading on any change), or
sent once as a test message.
"""

from __future__ import annotations

import hashlib
import html as html_lib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import jinja2
from email_validator import EmailNotValidError, validate_email

from newsletter.delivery.compose import Composer
from newsletter.delivery.message import Message
from newsletter.delivery.senders.base import Sender
from newsletter.delivery.variants import variant_rendering
from newsletter.dispatch.build import load_dispatch, no_dispatch
from newsletter.dispatch.render import frozen_rendering
from newsletter.dispatch.variants import full_key, parse_sections, variant_dispatch, week_sections
from newsletter.editorial.drafts import draft_mark, overlay
from newsletter.engagement.tracking import keep_links, render_tracked
from newsletter.errors import DispatchError, NewsletterError, SendError
from newsletter.models import Dispatch, Subscriber
from newsletter.settings import Settings
from newsletter.store import Store
from newsletter.weeks import Week

log = logging.getLogger(__name__)

SAMPLE_READER = Subscriber(id=0, email="reader@example.org", name="Sample Reader", status="active")
TEST_PREFIX = "[TEST] "


def _composer(
    store: Store,
    settings: Settings,
    week: Week,
    *,
    drafts: bool = False,
    sections: str | None = None,
) -> Composer:
    """`sections` ("AI,Markets"): the variant readers of those sections get (None: all)."""
    dispatch = load_dispatch(store, settings, week)
    if dispatch is None:
        raise no_dispatch(store, settings, week)
    if not dispatch.signals:
        raise DispatchError(f"dispatch {week} has no signals; there is nothing to preview")
    key = None
    if sections is not None:
        there = week_sections(dispatch, settings.sections)
        key = parse_sections(sections, there)
        key = None if key == full_key(there) else key
    stored = store.variants.get(dispatch.id, key) if key is not None else None
    rendered = variant_rendering(stored) if stored else None
    if key is None:
        rendered = frozen_rendering(dispatch)
    if rendered is None:
        frozen = dispatch.html is not None
        shown, marks = with_drafts(store, dispatch) if drafts and not frozen else (dispatch, {})
        if key is not None:
            row = store.dispatches.get_by_id(dispatch.id) or {}
            shown = variant_dispatch(
                shown,
                key,
                order=settings.sections,
                name=settings.name,
                subject_set=bool(row.get("subject_set")),
                preheader_set=bool(row.get("preheader_set")),
            )
        rendered = render_tracked(store, settings, shown, draft_marks=marks)
        keep_links(store, rendered, frozen=False)  # a test message's links lead somewhere
    return Composer(rendered, settings, store.secret_key(settings.secret_key), str(week))


def with_drafts(store: Store, dispatch: Dispatch) -> tuple[Dispatch, dict[int, str]]:
    """The dispatch with each waiting machine draft filled into its signal, and the mark each
    such card carries: for the editor's eyes only, never for a reader."""
    waiting = store.drafts.pending_for(s.id for s in dispatch.signals)
    if not waiting:
        return dispatch, {}
    sections = tuple(
        replace(
            section,
            signals=tuple(
                overlay(s, waiting[s.id]) if s.id in waiting else s for s in section.signals
            ),
        )
        for section in dispatch.sections
    )
    marks = {signal_id: draft_mark(draft, signal_id) for signal_id, draft in waiting.items()}
    return replace(dispatch, sections=sections), marks


def sample_message(
    store: Store, settings: Settings, week: Week, *, sections: str | None = None
) -> Message:
    """The dispatch exactly as a (sample) reader gets it: the frozen copy once sending began."""
    return _composer(store, settings, week, sections=sections).compose(SAMPLE_READER)


def preview_message(
    store: Store,
    settings: Settings,
    week: Week,
    *,
    drafts: bool = False,
    sections: str | None = None,
) -> tuple[str, str]:
    """HTML and text of the dispatch personalised for a sample reader; with `drafts`, the
    editor's view: waiting machine drafts shown in place, each card marked as a draft."""
    composer = _composer(store, settings, week, drafts=drafts, sections=sections)
    message = composer.compose(SAMPLE_READER)
    return message.html, message.text


def write_preview(
    store: Store,
    settings: Settings,
    week: Week,
    path: Path,
    *,
    drafts: bool = False,
    sections: str | None = None,
) -> Path:
    html, _ = preview_message(store, settings, week, drafts=drafts, sections=sections)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    partial.write_text(html, encoding="utf-8")
    os.replace(partial, path)
    return path.resolve()


def send_test(
    store: Store,
    settings: Settings,
    week: Week,
    to: str,
    sender: Sender,
    *,
    dry_run: bool = False,
    sections: str | None = None,
) -> Message:
    """One message to `to`, "[TEST]" in the subject; not recorded as a delivery."""
    try:
        address = validate_email(to, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise SendError(f"--to: {to!r} is not a valid email address ({exc})") from None
    reader = Subscriber(id=0, email=address, name=None, status="active")
    composer = _composer(store, settings, week, sections=sections)
    message = composer.compose(reader, subject_prefix=TEST_PREFIX)
    if dry_run:
        return message
    results = sender.send([message])
    if results and results[0].error is not None:
        raise results[0].error
    return message


# -- the live preview server ------------------------------------------------------------------

Render = Callable[[], tuple[str, str]]


@dataclass
class Snapshot:
    """The last render: HTML, text and a version the page polls to know when to reload."""

    html: str
    text: str
    version: str


def snapshot(render: Render) -> Snapshot:
    """Render now; an error (a broken template, a bad setting) is shown, not fatal."""
    try:
        html, text = render()
    except (NewsletterError, jinja2.TemplateError, OSError) as exc:
        message = f"The preview cannot be rendered: {exc}"
        html = f"<!doctype html><pre style='white-space:pre-wrap'>{html_lib.escape(message)}</pre>"
        text = message
    digest = hashlib.sha256((html + "\0" + text).encode("utf-8")).hexdigest()[:16]
    return Snapshot(html, text, digest)


def live_renderer(
    store: Store,
    load_settings: Callable[[], Settings],
    week: Week,
    *,
    drafts: bool = False,
    sections: str | None = None,
) -> Render:
    """Settings, signals and templates are read afresh on every render, so any edit shows."""

    def render() -> tuple[str, str]:
        return preview_message(store, load_settings(), week, drafts=drafts, sections=sections)

    return render


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Preview · {title}</title>
<style>
 body {{ margin: 0; background: #d9dee5; font: 14px system-ui, sans-serif; }}
 header {{ padding: 8px 16px; background: #1d2430; color: #fff; }}
 main {{ display: flex; gap: 24px; padding: 16px; align-items: flex-start; overflow-x: auto; }}
 figure {{ margin: 0; }} figcaption {{ margin: 0 0 6px; color: #1d2430; }}
 iframe {{ border: 1px solid #aab3bf; background: #fff; height: 85vh; }}
 #phone {{ width: 375px; }} #desktop {{ width: 800px; }} #text, #checks {{ width: 620px; }}
 #stats {{ width: 960px; }}
</style></head>
<body><header>{title} · reloads when a template, signal or setting changes ·
<span id="state">live</span></header>
<main>
<figure><figcaption>Phone · 375 px</figcaption><iframe id="phone" src="/email.html"></iframe>
</figure>
<figure><figcaption>Desktop · 800 px</figcaption><iframe id="desktop" src="/email.html"></iframe>
</figure>
<figure><figcaption>Plain text</figcaption><iframe id="text" src="/email.txt"></iframe></figure>
{panel}
{stats}
</main>
<script>
let version = {version};
async function poll() {{
  try {{
    const r = await fetch("/version", {{cache: "no-store"}});
    const v = (await r.json()).version;
    document.getElementById("state").textContent = "live";
    if (v !== version) {{
      version = v;
      for (const frame of document.querySelectorAll("iframe")) {{
        frame.contentWindow.location.reload();
      }}
    }}
  }} catch (e) {{ document.getElementById("state").textContent = "server stopped"; }}
  setTimeout(poll, 1000);
}}
setTimeout(poll, 1000);
</script></body></html>
"""


_PANEL = (
    '<figure><figcaption>Pre-flight checks</figcaption><iframe id="checks" src="/checks">'
    "</iframe></figure>"
)
_STATS = (
    "<figure><figcaption>Last dispatch: what readers followed</figcaption>"
    '<iframe id="stats" src="/stats"></iframe></figure>'
)


class PreviewServer(HTTPServer):
    """One thread (the store's SQLite connection stays in the thread that opened it)."""

    def __init__(
        self,
        address: tuple[str, int],
        render: Render,
        title: str,
        panel: Callable[[], str] | None = None,
        stats: Callable[[], str] | None = None,
    ) -> None:
        super().__init__(address, _Handler)
        self.render = render
        self.title = title
        self.panel = panel
        self.stats = stats
        self.current = snapshot(render)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}/"


class _Handler(BaseHTTPRequestHandler):
    server: PreviewServer

    def do_GET(self) -> None:
        host = urlsplit(f"//{self.headers.get('Host', '')}").hostname
        if host not in ("127.0.0.1", "localhost"):  # no DNS rebinding onto the draft
            self._send(403, "text/plain", b"forbidden")
            return
        path = urlsplit(self.path).path
        server = self.server
        if path == "/version":
            server.current = snapshot(server.render)
            body = json.dumps({"version": server.current.version}).encode()
            self._send(200, "application/json", body)
        elif path == "/":
            page = _PAGE.format(
                title=html_lib.escape(server.title),
                version=json.dumps(server.current.version),
                panel=_PANEL if server.panel else "",
                stats=_STATS if server.stats else "",
            )
            self._send(200, "text/html; charset=utf-8", page.encode("utf-8"))
        elif path == "/email.html":
            self._send(200, "text/html; charset=utf-8", server.current.html.encode("utf-8"))
        elif path == "/email.txt":
            self._send(200, "text/plain; charset=utf-8", server.current.text.encode("utf-8"))
        elif path == "/checks" and server.panel is not None:
            self._send(200, "text/html; charset=utf-8", server.panel().encode("utf-8"))
        elif path == "/stats" and server.stats is not None:
            self._send(200, "text/html; charset=utf-8", server.stats().encode("utf-8"))
        else:
            self._send(404, "text/plain", b"not found")

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("preview: " + format, *args)


def make_preview_server(
    render: Render,
    *,
    title: str = "newsletter",
    host: str = "127.0.0.1",
    port: int = 8025,
    panel: Callable[[], str] | None = None,
    stats: Callable[[], str] | None = None,
) -> PreviewServer:
    """Bound to loopback only; port 0 picks a free one. `panel` adds a page beside the views
    (the pre-flight checks report), `stats` another (the last dispatch's figures), each fetched
    when the page loads or reloads."""
    try:
        return PreviewServer((host, port), render, title, panel, stats)
    except OSError as exc:
        raise NewsletterError(f"--port: cannot listen on {host}:{port} ({exc.strerror})") from None
