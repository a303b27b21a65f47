"""Console fixtures: users of each role, signed in through the real sign-in form (with the
shipped :class:`gateway.testing.ConsoleClient`, as plugin authors' tests do)."""

from __future__ import annotations

import itertools

import pytest

from gateway.console.users import create_admin
from gateway.testing import ConsoleClient

PASSWORD = "correct horse battery"
_numbers = itertools.count(1)


def sign_in(app, role: str, username: str | None = None, agency: str | None = None,
            key_type: str = "live") -> ConsoleClient:
    """A new console user, signed in (an agency role needs ``agency``, its id or name)."""
    username = username or f"{role}{next(_numbers)}"
    create_admin(app.extensions["gateway"], username, PASSWORD, role, language="en",
                 agency=agency, key_type=key_type)
    return ConsoleClient.sign_in(app, username, PASSWORD, role)


@pytest.fixture
def console_as(app):
    """``console_as("operator")``: a new user with that role, signed in."""

    def make(role: str, username: str | None = None) -> ConsoleClient:
        return sign_in(app, role, username)

    return make
