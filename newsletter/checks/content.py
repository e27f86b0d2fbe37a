"""Content: links a reader can follow, images that degrade well, enough text for filters."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from newsletter.checks.htmlscan import Scan, scan_html
from newsletter.checks.parsed import Parsed
from newsletter.checks.report import Finding, error, info, warning

#: hosts that only work on the editor's machine or are reserved for documentation (RFC 2606)
LOCAL_HOSTS = {"localhost", "127.0.0.1", "0.0.0.0", "::1", "[::1]"}  # noqa: S104
EXAMPLE_DOMAINS = ("example.com", "example.org", "example.net")
RESERVED_TLDS = (".example", ".test", ".invalid", ".localhost", ".local")
MIN_TEXT = 500  # characters of text under which an image-led email looks like spam
TEXT_PER_IMAGE = 200


def check_content(
    message: Parsed, *, production: bool, resolve: Callable[[str], str | None] | None = None
) -> list[Finding]:
    """`resolve`: where a tracked link leads (engagement): its destination is checked too."""
    scan = scan_html(message.html)
    hrefs = list(scan.links)
    if resolve is not None:
        hrefs += [d for d in map(resolve, scan.links) if d]
    found = _links(hrefs, production) + _images(scan) + _balance(scan)
    if not message.text.strip():
        found.append(
            error("content", "the plain-text part is empty", "render the text template too")
        )
    return found


def is_placeholder_host(host: str) -> bool:
    host = host.lower().rstrip(".")
    return (
        host in LOCAL_HOSTS
        or host.endswith(RESERVED_TLDS)
        or any(host == d or host.endswith("." + d) for d in EXAMPLE_DOMAINS)
    )


def _links(links: list[str], production: bool) -> list[Finding]:
    found: list[Finding] = []
    placeholders: list[str] = []
    for href in dict.fromkeys(links):
        parts = urlsplit(href)
        scheme = parts.scheme.lower()
        if scheme == "mailto":
            continue
        if scheme not in ("http", "https") or not parts.netloc:
            found.append(
                error(
                    "content",
                    f"link {href!r} is not an absolute http(s) URL: it goes nowhere in a mailbox",
                    "write the full URL, starting https://",
                )
            )
        elif is_placeholder_host(parts.hostname or ""):
            placeholders.append(href)
    if placeholders:
        hosts = sorted({urlsplit(u).netloc for u in placeholders})
        text = f"{len(placeholders)} link(s) point to {', '.join(hosts)}, e.g. {placeholders[0]}"
        fix = "set NEWSLETTER_PUBLIC_URL to the public https address and fix the signal URLs"
        if production:
            found.append(error("content", f"{text}: readers cannot open them", fix))
        else:
            found.append(
                info(
                    "content",
                    f"{text} (fine with test settings: the public URL is not https)",
                    fix,
                )
            )
    return found


def _images(scan: Scan) -> list[Finding]:
    found: list[Finding] = []
    for image in scan.images:
        name = image.src.rsplit("/", 1)[-1] or image.src or "(no src)"
        if image.alt is None:
            found.append(
                error(
                    "content",
                    f"image {name} has no alt text: screen readers and blocked images show nothing",
                    'add alt="what it shows" (alt="" for a decorative image)',
                )
            )
        if not image.width:
            found.append(
                warning(
                    "content",
                    f"image {name} has no width attribute: Outlook shows it at full size",
                    'add width="N" (pixels)',
                )
            )
        if image.src and not image.src.lower().startswith(("https://", "http://", "cid:")):
            found.append(
                error(
                    "content",
                    f"image src {image.src!r} is not an absolute URL",
                    "host it and use the https URL",
                )
            )
    return found


def _balance(scan: Scan) -> list[Finding]:
    images, chars = len(scan.images), len(scan.text)
    if not images:
        return []
    if chars < MIN_TEXT:
        return [
            error(
                "content",
                f"{images} image(s), only {chars} characters of text: filters flag image-only mail",
                "add text: at least a few sentences alongside the images",
            )
        ]
    if chars < images * TEXT_PER_IMAGE:
        return [
            warning(
                "content",
                f"{images} images for {chars} characters of text: image-heavy",
                f"aim for at least {TEXT_PER_IMAGE} characters of text per image",
            )
        ]
    return []
