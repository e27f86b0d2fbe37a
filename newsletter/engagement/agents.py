"""Who is asking: a person's browser, or a machine (a mail security gateway, a link preview, a
crawler, a script). Gateways such as Microsoft Safe Links, Proofpoint, Mimecast and Barracuda
follow every link of a message within seconds of delivery, often with a HEAD request or a
user agent that says what they are; those that pose as a browser are caught as bursts
(`engagement.bursts`)."""

from __future__ import annotations

import re

#: a browser's user agent: "Mozilla/5.0 (platform) AppleWebKit/..." or "... Gecko/..."
_BROWSER = re.compile(r"Mozilla/5\.0 \([^)]+\) .*\b(?:AppleWebKit|Gecko|Trident)/")
#: words in the user agents of scanners, previews, crawlers and HTTP libraries
_MACHINE = re.compile(
    r"bot\b|bot/|crawl|spider|slurp|scan|preview|headless|phantom|lighthouse|monitor"
    r"|barracuda|mimecast|proofpoint|urldefense|ironport|cisco|fortinet|fortimail|sophos"
    r"|trend ?micro|tmes|symantec|forcepoint|zscaler|checkpoint|safelinks|safe links"
    r"|ms-?office|microsoft office|outlook-(?:ios|android)-link|googleimageproxy"
    r"|yahoomailproxy|facebookexternalhit|whatsapp|telegram|discord|skypeuri|slack"
    r"|linkedin|twitter|embedly|curl|wget|python|httpx|aiohttp|java/|okhttp|go-http"
    r"|libwww|node-fetch|axios|postman|\bhttp",
    re.IGNORECASE,
)


def classify(method: str, agent: str) -> tuple[bool, str | None]:
    """(a person's browser?, why not): HEAD is never a person; a user agent that is not a
    browser's, or names a machine, is not either."""
    if method != "GET":
        return False, "head"
    if not _BROWSER.match(agent) or _MACHINE.search(agent):
        return False, "agent"
    return True, None
