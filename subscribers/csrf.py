"""CSRF protection for the sign-up form: a random nonce in a cookie and the same nonce, signed
with the secret key and a timestamp, in a hidden field. A post must carry both and they must
match; another site can neither read the cookie nor forge the signed field.
"""

from __future__ import annotations

import hmac
import secrets

from flask import Response
from itsdangerous import BadData, URLSafeTimedSerializer

COOKIE = "nl_csrf"
FIELD = "csrf_token"
MAX_AGE = 2 * 86400


def _serializer(secret: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt="newsletter-signup-csrf")


def issue(secret: str, cookie: str | None) -> tuple[str, str]:
    """(cookie value, field value); an existing well-formed cookie is kept so tabs agree."""
    nonce = cookie if cookie and 20 <= len(cookie) <= 64 and cookie.isascii() else None
    nonce = nonce or secrets.token_urlsafe(24)
    return nonce, _serializer(secret).dumps(nonce)


def check(secret: str, cookie: str | None, field: str | None) -> bool:
    if not cookie or not field or len(field) > 300:
        return False
    try:
        nonce = _serializer(secret).loads(field, max_age=MAX_AGE)
    except BadData:
        return False
    return isinstance(nonce, str) and hmac.compare_digest(nonce.encode(), cookie.encode())


def set_cookie(response: Response, cookie: str, *, secure: bool) -> None:
    """The nonce's cookie, on every page that shows a form protected by it."""
    response.set_cookie(
        COOKIE, cookie, max_age=MAX_AGE, httponly=True, samesite="Lax", secure=secure
    )
