"""Every check on the real message a sample reader would get: what `check`, `send` and the
preview run before anything leaves.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from newsletter.checks.auth import check_dkim, dkim_config
from newsletter.checks.content import check_content, is_placeholder_host
from newsletter.checks.links import check_links
from newsletter.checks.lint import check_lint
from newsletter.checks.parsed import Parsed
from newsletter.checks.render import check_render, find_chromium
from newsletter.checks.report import CHECKS, Finding, Level, Report, warning
from newsletter.checks.size import check_size
from newsletter.checks.spam import check_spam, find_spamassassin
from newsletter.dispatch.build import load_dispatch
from newsletter.dispatch.variants import Key, describe, full_key, reader_key, week_sections
from newsletter.engagement.tracking import destinations
from newsletter.errors import NewsletterError
from newsletter.preview import sample_message
from newsletter.settings import Settings
from newsletter.store import Store
from newsletter.weeks import Week


@dataclass(frozen=True)
class Tools:
    """System programs the checks drive; None when not installed (the check says so)."""

    spamassassin: str | None
    chromium: str | None

    @classmethod
    def find(cls) -> Tools:
        return cls(find_spamassassin(), find_chromium())


def is_production(settings: Settings) -> bool:
    """Settings meant for real readers (the public URL is https on a real host): then links
    to localhost or example domains, and an unsubscribe link without https, are errors."""
    parts = urlsplit(settings.public_url)
    return parts.scheme == "https" and not is_placeholder_host(parts.hostname or "")


def check_public_url(settings: Settings) -> list[Finding]:
    """Real mail with test settings: every reader's unsubscribe and archive link is dead."""
    if settings.sender == "file" or is_production(settings):
        return []
    return [
        warning(
            "content",
            f"mail leaves through {settings.sender} but NEWSLETTER_PUBLIC_URL is"
            f" {settings.public_url}: readers' unsubscribe and archive links will not work",
            "set NEWSLETTER_PUBLIC_URL to the public https address of the web service",
        )
    ]


def check_message(
    raw: bytes,
    settings: Settings,
    *,
    tools: Tools | None = None,
    links: bool = False,
    link_timeout: float = 10.0,
    screenshots: Path | None = None,
    skip: Collection[str] = (),
    progress: Callable[[str], None] = lambda _: None,
    resolve: Callable[[str], str | None] | None = None,
) -> Report:
    """Run every check on one built message (RFC 5322 bytes), except those in `skip`;
    `resolve` names where its tracked links lead (`engagement.tracking.destinations`)."""
    tools = tools or Tools.find()
    message = Parsed.from_bytes(raw)
    production = is_production(settings)
    report = Report(subject=message.subject)
    unknown = set(skip) - set(CHECKS)
    if unknown:
        raise NewsletterError(
            f"unknown check {', '.join(sorted(unknown))}: choose from {', '.join(CHECKS)}"
        )
    if "size" not in skip:
        report.extend(check_size(message))
    if "lint" not in skip:
        report.extend(check_lint(message, production=production))
    if "content" not in skip:
        report.extend(check_content(message, production=production, resolve=resolve))
        report.extend(check_public_url(settings))
    if "auth" not in skip:
        report.extend(
            check_dkim(message, dkim_config(settings), settings.from_domain, settings.sender)
        )
    if "spam" not in skip:
        progress("scoring with SpamAssassin")
        report.extend(check_spam(message, tools.spamassassin))
    if links and "links" not in skip:
        progress("checking links")
        own = tuple(f"{settings.public_url}/{folder}/" for folder in ("archive", "signals"))
        report.extend(
            check_links(
                message,
                timeout=link_timeout,
                concurrency=settings.concurrency,
                published_on_send=own,
                resolve=resolve,
            )
        )
    if "render" not in skip:
        progress("rendering at 375 and 600 px")
        report.extend(check_render(message.html, tools.chromium, screenshots))
    return report


#: checks whose answer does not depend on which sections a variant holds (the layout, the
#: links' hosts, the signing): run on the first variant only; the rest run on every one
ONCE = ("auth", "links", "render")


def variants_to_check(
    store: Store, settings: Settings, week: Week, *, now: float | None = None
) -> list[tuple[str, Key | None]]:
    """(label, key) of every variant a send now would mail, the full dispatch (key None) and
    then the commonest first; the full dispatch alone, unlabelled, when every reader gets
    everything or there are no readers."""
    dispatch = load_dispatch(store, settings, week)
    if dispatch is None:
        return [("", None)]
    sections = week_sections(dispatch, settings.sections)
    full = full_key(sections)
    counted: dict[Key, int] = {}
    for off, count in store.variants.reader_choices(now=time.time() if now is None else now):
        key = reader_key(sections, off)
        if key:
            counted[key] = counted.get(key, 0) + count
    keys = sorted(counted, key=lambda k: (k != full, -counted[k], k))
    if not keys or keys == [full]:
        return [("", None)]  # the common case: the dispatch itself, nothing to tell apart
    return [(describe(key, full), None if key == full else key) for key in keys]


def run_checks(
    store: Store,
    settings: Settings,
    week: Week,
    *,
    tools: Tools | None = None,
    links: bool = False,
    link_timeout: float = 10.0,
    screenshots: Path | None = None,
    skip: Collection[str] = (),
    progress: Callable[[str], None] = lambda _: None,
) -> Report:
    """Build the week's message for a sample reader of each variant a send would mail and
    check it (each finding names its variant when there are several); `report.ok` gates
    sending. A finding every variant has is reported once."""
    tools = tools or Tools.find()
    merged: dict[tuple[str, str, str, str], list[str]] = {}
    report: Report | None = None
    variants = variants_to_check(store, settings, week)
    for n, (label, key) in enumerate(variants):
        if label:
            progress(f"variant {label}")
        sections = ",".join(key) if key is not None else None
        raw = sample_message(store, settings, week, sections=sections).as_bytes()  # tracked
        found = check_message(
            raw,
            settings,
            resolve=destinations(store),
            tools=tools,
            links=links,
            link_timeout=link_timeout,
            screenshots=screenshots if n == 0 else None,
            skip=set(skip) | (set(ONCE) if n else set()),
            progress=progress,
        )
        report = report or Report(subject=found.subject)
        for finding in found.findings:
            merged.setdefault((finding.level, finding.check, finding.message, finding.fix), [])
            merged[(finding.level, finding.check, finding.message, finding.fix)].append(label)
    assert report is not None
    for (level, check, message, fix), labels in merged.items():
        everywhere = len(variants) > 1 and len(labels) == len(variants)
        where = "every variant" if everywhere else "; ".join(filter(None, labels))
        report.findings.append(Finding(Level(level), check, message, fix, where))
    return report
