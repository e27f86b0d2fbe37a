"""AWS Signature Version 4 for one HTTP request, by botocore's signer (`botocore.auth.SigV4Auth`).

botocore is the implementation AWS maintains and tests against its own signing suite; this
module only adapts it to the bytes and headers an httpx request carries. Importing botocore
costs ~100 ms, so nothing imports this module but the SES sender, when it is built; botocore
comes with the `ses` extra.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from newsletter.errors import SettingsError

INSTALL = "NEWSLETTER_SENDER=ses needs botocore: pip install 'newsletter[ses]'"


@dataclass(frozen=True)
class AwsCredentials:
    """The standard AWS_* variables; a session token comes with temporary credentials."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str = field(default="", repr=False)


class SigV4:
    """Signs requests to one AWS service in one region."""

    def __init__(self, credentials: AwsCredentials, region: str, service: str) -> None:
        try:
            from botocore.auth import SigV4Auth
            from botocore.credentials import Credentials
        except ImportError:
            raise SettingsError(INSTALL) from None
        self.region = region
        self.service = service
        self._auth: Any = SigV4Auth(
            Credentials(
                credentials.access_key_id,
                credentials.secret_access_key,
                credentials.session_token or None,
            ),
            service,
            region,
        )

    def headers(
        self, method: str, url: str, body: bytes, headers: Mapping[str, str]
    ) -> dict[str, str]:
        """`headers` plus X-Amz-Date, X-Amz-Security-Token (if any) and Authorization for
        exactly this method, URL and body. Every header given is signed, so send them as
        given (the Host header is the URL's, as httpx sends it)."""
        from botocore.awsrequest import AWSRequest

        request = AWSRequest(method=method, url=url, data=body, headers=dict(headers))
        self._auth.add_auth(request)
        return dict(request.headers.items())
