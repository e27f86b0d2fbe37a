"""The public subscription web service: sign-up form, confirmation and unsubscribe links,
provider webhooks, the web archive. It uses `newsletter`; `newsletter` never imports it.
"""

from subscribers.app import create_app

__all__ = ["create_app"]
