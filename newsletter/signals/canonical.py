"""One spelling per page, so the same item seen twice (or under two URLs) is one signal.

Pure string work: no network, no database.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

# arXiv serves one paper as /abs/ID, /abs/IDv2, /pdf/ID(.pdf), /html/IDv1, on several hosts.
_ARXIV_ID = r"(?P<id>\d{4}\.\d{4,5}|[a-z][a-z\-]*(?:\.[A-Z]{2})?/\d{7})"
_ARXIV_URL = re.compile(
    rf"^https?://(?:www\.|export\.|rss\.)?arxiv\.org/(?:abs|pdf|html)/(?:arxiv:)?{_ARXIV_ID}"
    r"(?:v\d+)?(?:\.pdf)?/?(?:[?#].*)?$",
    re.IGNORECASE,
)
_ARXIV_GUID = re.compile(rf"^oai:arXiv\.org:{_ARXIV_ID}(?:v\d+)?$", re.IGNORECASE)
_ARXIV_BARE = re.compile(rf"^(?:arxiv:)?{_ARXIV_ID}(?:v\d+)?$", re.IGNORECASE)

# Query parameters that identify a campaign or a click, never the page.
_TRACKING = re.compile(
    r"^(utm_\w+|fbclid|gclid|dclid|gbraid|wbraid|msclkid|yclid|twclid|igshid|mc_cid|mc_eid"
    r"|_hsenc|_hsmi|mkt_tok|ref_src|oly_enc_id|oly_anon_id|vero_id|__s|s_cid|cmpid)$",
    re.IGNORECASE,
)
_DEFAULT_PORTS = {"http": 80, "https": 443}


def arxiv_url(arxiv_id: str) -> str:
    return f"https://arxiv.org/abs/{arxiv_id}"


def canonical_url(url: str) -> str:
    """Lower-case scheme and host, no default port, tracking query or fragment, no trailing
    slash; every arXiv abs/pdf/html/version spelling becomes https://arxiv.org/abs/ID."""
    url = url.strip()
    arxiv = _ARXIV_URL.match(url)
    if arxiv:
        return arxiv_url(arxiv["id"])
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = host if port in (None, _DEFAULT_PORTS.get(scheme)) else f"{host}:{port}"
    if parts.username or parts.password:
        netloc = f"{parts.netloc.rpartition('@')[0]}@{netloc}"
    query = sorted((k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True))
    kept = urlencode([(k, v) for k, v in query if not _TRACKING.match(k)])
    path = parts.path.rstrip("/") if parts.path not in ("", "/") else ""
    return urlunsplit((scheme, netloc, path, kept, ""))


def arxiv_id_of(url: str | None, guid: str | None = None) -> str | None:
    """The arXiv identifier (without version) from an abs/pdf URL or an `oai:arXiv.org:` guid."""
    for pattern, value in ((_ARXIV_GUID, guid), (_ARXIV_URL, url), (_ARXIV_URL, guid)):
        match = pattern.match((value or "").strip())
        if match:
            return match["id"]
    return None


def bare_arxiv_id(text: str) -> str | None:
    """`2606.07527v2` or `arXiv:hep-th/9901001` as the editor writes it, without the version."""
    match = _ARXIV_BARE.match(text.strip())
    return match["id"] if match else None
