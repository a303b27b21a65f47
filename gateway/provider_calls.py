"""What a failed HTTP call to a provider (a courier, a notifier) says about itself.

Shared by the couriers' and the notifiers' adapter bases, which map it to their own errors:
whether the request can have reached the provider (a create or a send may then have
happened: never repeated blindly), and how long the provider asked us to wait. Pure; the
``requests`` exception or response is read, nothing is sent.
"""

from __future__ import annotations

import requests


def never_sent(exc: requests.RequestException) -> bool:
    """The request cannot have reached the provider: the connection was never made."""
    return isinstance(exc, requests.ConnectTimeout) or (
        isinstance(exc, requests.ConnectionError)
        and "NewConnectionError" in repr(exc.args))


def retry_after(response: requests.Response) -> float | None:
    """The seconds of a ``Retry-After`` header, or None."""
    try:
        return float(response.headers.get("Retry-After", ""))
    except ValueError:
        return None
