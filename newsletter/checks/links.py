"""Link checking (`--links`): every http(s) link fetched concurrently, redirects followed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from newsletter import __version__
from newsletter.checks.htmlscan import scan_html
from newsletter.checks.parsed import Parsed
from newsletter.checks.report import Finding, error, info, warning

USER_AGENT = f"newsletter-link-check/{__version__}"
#: answers to HEAD that often mean "this server only does GET", not "broken"
_RETRY_WITH_GET = {403, 404, 405, 501}


@dataclass(frozen=True)
class LinkResult:
    url: str
    status: int | None = None
    final_url: str | None = None
    permanent: bool = False  # the first redirect was 301 or 308
    problem: str | None = None

    @property
    def broken(self) -> bool:
        return self.problem is not None or self.status is None or self.status >= 400

    @property
    def redirected(self) -> bool:
        return self.final_url is not None and self.final_url != self.url


async def _check_one(client: httpx.AsyncClient, url: str, gate: asyncio.Semaphore) -> LinkResult:
    async with gate:
        try:
            response = await client.head(url)
            if response.status_code in _RETRY_WITH_GET:
                async with client.stream("GET", url) as streamed:
                    response = streamed
        except httpx.TimeoutException:
            return LinkResult(url, problem="timed out")
        except httpx.TooManyRedirects:
            return LinkResult(url, problem="too many redirects")
        except httpx.HTTPError as exc:
            return LinkResult(url, problem=f"{type(exc).__name__}: {exc}".rstrip(": "))
    final = str(response.url)
    first = response.history[0].status_code if response.history else None
    return LinkResult(
        url,
        status=response.status_code,
        final_url=final if response.history else None,
        permanent=first in (301, 308),
    )


async def fetch_links(
    urls: list[str],
    *,
    timeout: float = 10.0,
    concurrency: int = 8,
    transport: httpx.AsyncBaseTransport | None = None,
) -> list[LinkResult]:
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(
        timeout=timeout,
        follow_redirects=True,
        max_redirects=10,
        headers={"User-Agent": USER_AGENT},
        transport=transport,
    ) as client:
        return list(await asyncio.gather(*(_check_one(client, u, gate) for u in urls)))


def http_links(html: str) -> list[str]:
    """Each distinct http(s) link once, in document order."""
    return [
        u
        for u in dict.fromkeys(scan_html(html).links)
        if urlsplit(u).scheme.lower() in ("http", "https") and urlsplit(u).netloc
    ]


def check_links(
    message: Parsed,
    *,
    timeout: float = 10.0,
    concurrency: int = 8,
    transport: httpx.AsyncBaseTransport | None = None,
    published_on_send: tuple[str, ...] = (),
    resolve: Callable[[str], str | None] | None = None,
) -> list[Finding]:
    """`published_on_send`: URL prefixes of our own pages that appear once the dispatch goes out
    (its archive copy, its signals' pages): a 404 there now is expected, not broken.
    `resolve`: a tracked link's destination (engagement), fetched instead of our redirect."""
    urls = http_links(message.html)
    if resolve is not None:
        urls = list(dict.fromkeys(resolve(u) or u for u in urls))
    results = asyncio.run(
        fetch_links(urls, timeout=timeout, concurrency=concurrency, transport=transport)
    )
    return findings_for(results, published_on_send)


def findings_for(
    results: list[LinkResult], published_on_send: tuple[str, ...] = ()
) -> list[Finding]:
    found: list[Finding] = []

    def pending(r: LinkResult) -> bool:
        return r.status == 404 and bool(published_on_send) and r.url.startswith(published_on_send)

    for r in results:
        if pending(r):
            found.append(info("links", f"{r.url}: not public yet, published when this is sent"))
        elif r.broken:
            why = r.problem or f"HTTP {r.status}"
            found.append(error("links", f"broken link {r.url}: {why}", "fix or remove the link"))
        elif r.redirected and r.permanent:
            found.append(
                warning(
                    "links",
                    f"{r.url} moved permanently to {r.final_url}",
                    "link to the final address",
                )
            )
        elif r.redirected:
            found.append(info("links", f"{r.url} redirects to {r.final_url}"))
    broken = sum(r.broken and not pending(r) for r in results)
    moved = sum(r.redirected and not r.broken for r in results)
    found.append(
        info("links", f"checked {len(results)} link(s): {broken} broken, {moved} redirected")
    )
    return found
