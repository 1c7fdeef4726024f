"""Driving the admin console (SPEC §14) through the Flask test client: sign in with an admin
key, read a page's form token, post its forms. Every cookie value is registered with the
secret-leak check."""
from __future__ import annotations

import re
from typing import Any

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests import secret_registry

SESSION_COOKIE = "__Host-baton-console"
SIGN_IN_COOKIE = "__Host-baton-console-sign-in"
_FORM_TOKEN = re.compile(r'name="csrf_token" value="([^"]*)"')


def form_token(response: TestResponse) -> str:
    """The form token of the first form of a page."""
    found = _FORM_TOKEN.search(response.get_data(as_text=True))
    assert found, "the page has no form token"
    return found.group(1)


def set_cookie_header(response: TestResponse, name: str) -> str:
    """The Set-Cookie header that sets (or clears) cookie `name`."""
    headers = [h for h in response.headers.getlist("Set-Cookie") if h.startswith(name + "=")]
    assert len(headers) == 1, response.headers.getlist("Set-Cookie")
    return headers[0]


class Console:
    """A browser's view of the console, over the test client (its cookie jar included)."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def sign_in(self, tenant: str, key: str, **kw: Any) -> TestResponse:
        """GET the sign-in form, then POST it with the tenant and key."""
        form = self.client.get("/console/sign-in")
        assert form.status_code == 200
        self.remember_cookies()
        response = self.client.post("/console/sign-in", data={
            "csrf_token": form_token(form), "tenant": tenant, "admin_key": key}, **kw)
        self.remember_cookies()
        return response

    def signed_in(self, tenant: str, key: str) -> TestResponse:
        """sign_in that must succeed."""
        response = self.sign_in(tenant, key)
        assert response.status_code == 303, response.get_data(as_text=True)
        assert response.headers["Location"] == "/console/users"
        return response

    @property
    def session_token(self) -> str | None:
        cookie = self.client.get_cookie(SESSION_COOKIE)
        return cookie.value if cookie else None

    def remember_cookies(self) -> None:
        for name in (SESSION_COOKIE, SIGN_IN_COOKIE):
            cookie = self.client.get_cookie(name)
            if cookie:
                secret_registry.remember(cookie.value)

    def get(self, path: str, **kw: Any) -> TestResponse:
        return self.client.get(f"/console{path}", **kw)

    def post(self, path: str, data: dict | None = None, *, token: str | None = None,
             **kw: Any) -> TestResponse:
        """POST a form; with the form token of the users page unless `token` is given."""
        if token is None:
            token = form_token(self.get("/users"))
        return self.client.post(f"/console{path}", data={"csrf_token": token, **(data or {})},
                                **kw)

    def confirm(self, path: str) -> TestResponse:
        """A destructive action as a person does it: the confirmation page, then its form."""
        page = self.get(path)
        assert page.status_code == 200, page.get_data(as_text=True)
        action = re.search(r'<form method="post" action="([^"]+)" class="confirm">',
                           page.get_data(as_text=True))
        assert action and action.group(1) == f"/console{path}"
        return self.post(path, token=form_token(page))
