"""The HTTP status of each kind of domain error: the one table both edges answer with.

The domain (:mod:`gateway.errors`) speaks of things not found, forbidden, invalid, in
conflict, of callers not recognised or too eager. The API turns them into the JSON error
shape (:mod:`gateway.api.errors`) and the console into a page (``gateway.console``); both
read the status here, so the two edges cannot disagree, and neither needs the other. This
module imports nothing of HTTP: it is a table of numbers.
"""

from __future__ import annotations

from .errors import (
    BudgetExhausted,
    Conflict,
    Forbidden,
    GatewayError,
    Invalid,
    NotFound,
    TooManyRequests,
    Unauthenticated,
)

#: the HTTP status of each kind of domain error (the most specific class in its MRO wins)
STATUS_OF: dict[type[GatewayError], int] = {
    NotFound: 404,
    Forbidden: 403,
    Invalid: 422,
    Conflict: 409,
    BudgetExhausted: 409,
    Unauthenticated: 401,
    TooManyRequests: 429,
}


def status_of(error: GatewayError) -> int:
    """The HTTP status of a domain error; 500 for a kind no edge has been taught."""
    for cls in type(error).__mro__:
        if cls in STATUS_OF:
            return STATUS_OF[cls]
    return 500
