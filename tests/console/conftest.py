"""Console fixtures: users of each role, signed in through the real sign-in form."""

from __future__ import annotations

import itertools
import re

import pytest

from gateway.console.users import create_admin

PASSWORD = "correct horse battery"
_numbers = itertools.count(1)
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class ConsoleClient:
    """A Flask test client signed in to the console, that sends the CSRF token on forms."""

    def __init__(self, client, username: str, role: str):
        self.client, self.username, self.role = client, username, role
        self.csrf = None

    def get(self, url, **kw):
        response = self.client.get(url, **kw)
        found = _CSRF.search(response.get_data(as_text=True))
        if found:
            self.csrf = found.group(1)
        return response

    def post(self, url, data=None, csrf=True, **kw):
        data = dict(data or {})
        if csrf:
            if self.csrf is None:
                self.get("/console/dashboard")
            data.setdefault("csrf_token", self.csrf)
        return self.client.post(url, data=data, **kw)


def sign_in(app, role: str, username: str | None = None) -> ConsoleClient:
    username = username or f"{role}{next(_numbers)}"
    create_admin(app.extensions["gateway"], username, PASSWORD, role, language="en")
    console = ConsoleClient(app.test_client(), username, role)
    console.get("/console/sign-in")
    response = console.post("/console/sign-in", {"username": username, "password": PASSWORD})
    assert response.status_code == 302, response.get_data(as_text=True)
    console.get("/console/dashboard")
    return console


@pytest.fixture
def console_as(app):
    """``console_as("operator")``: a new user with that role, signed in."""

    def make(role: str, username: str | None = None) -> ConsoleClient:
        return sign_in(app, role, username)

    return make
