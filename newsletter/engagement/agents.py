"""Who is asking: a person's browser, or a machine (a mail security gateway, a link preview, a
crawler, a script). Gateways such as Microsoft Safe Links, Proofpoint, Mimecast and Barracuda
follow every link of a message within seconds of delivery, often with a HEAD request or a
user agent that says what they are; those that pose as a browser are caught as bursts
(`engagement.bursts`)."""

from __future__ import annotations

import re
from functools import lru_cache

#: a browser's user agent: "Mozilla/5.0 (platform) AppleWebKit/..." or "... Gecko/..."
_BROWSER = re.compile(r"Mozilla/5\.0 \([^)]+\) [^\r\n]*?(?:AppleWebKit|Gecko|Trident)/")
#: words in the user agents of scanners, previews, crawlers and HTTP libraries (lower case)
_MACHINE = (
    "bot",
    "crawl",
    "spider",
    "slurp",
    "scan",
    "preview",
    "headless",
    "phantom",
    "lighthouse",
    "monitor",
    "barracuda",
    "mimecast",
    "proofpoint",
    "urldefense",
    "ironport",
    "cisco",
    "fortinet",
    "fortimail",
    "sophos",
    "trend micro",
    "trendmicro",
    "tmes",
    "symantec",
    "forcepoint",
    "zscaler",
    "checkpoint",
    "safelinks",
    "safe links",
    "ms-office",
    "msoffice",
    "microsoft office",
    "googleimageproxy",
    "yahoomailproxy",
    "facebookexternalhit",
    "whatsapp",
    "telegram",
    "discord",
    "skypeuri",
    "slack",
    "linkedin",
    "twitter",
    "embedly",
    "curl",
    "wget",
    "python",
    "httpx",
    "aiohttp",
    "java/",
    "okhttp",
    "go-http",
    "libwww",
    "node-fetch",
    "axios",
    "postman",
    "http:",
    "https:",
)


@lru_cache(maxsize=4096)  # a few thousand user agents are most of any dispatch's clicks
def _is_browser(agent: str) -> bool:
    lowered = agent.lower()
    return bool(_BROWSER.match(agent)) and not any(word in lowered for word in _MACHINE)


def classify(method: str, agent: str) -> tuple[bool, str | None]:
    """(a person's browser?, why not): HEAD is never a person; a user agent that is not a
    browser's, or names a machine, is not either."""
    if method != "GET":
        return False, "head"
    if not _is_browser(agent):
        return False, "agent"
    return True, None
