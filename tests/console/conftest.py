"""A console user over HTTP: its cookies kept, its forms posted with the XSRF token the page gave."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import urlencode

import pytest
import tornado.httpclient

Response = tornado.httpclient.HTTPResponse
Fetch = Callable[..., Awaitable[Response]]
XSRF_FIELD = re.compile(r'name="_xsrf" value="([^"]+)"')


class ConsoleUser:
    def __init__(self, fetch: Fetch) -> None:
        self._fetch = fetch
        self.cookies: dict[str, str] = {}
        self.set_cookie_headers: list[str] = []

    async def request(self, path: str, **kwargs: Any) -> Response:
        headers = dict(kwargs.pop("headers", {}))
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        response = await self._fetch(path, headers=headers, follow_redirects=False, **kwargs)
        for header in response.headers.get_list("Set-Cookie"):
            self.set_cookie_headers.append(header)
            for name, morsel in SimpleCookie(header).items():
                if morsel["expires"] and "1970" in morsel["expires"] or not morsel.value:
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
        return response

    async def get(self, path: str, **kwargs: Any) -> Response:
        return await self.request(path, **kwargs)

    async def post(self, path: str, fields: dict[str, str], *, form_page: str | None = None,
                   **kwargs: Any) -> Response:
        """Post ``fields`` with the XSRF token of the form on ``form_page`` (None: with no token)."""
        if form_page is not None:
            page = await self.get(form_page)
            fields = {**fields, "_xsrf": XSRF_FIELD.search(page.body.decode()).group(1)}
        return await self.request(path, method="POST", body=urlencode(fields), **kwargs)

    async def login(self, username: str, password: str) -> Response:
        return await self.post("/console/login/", {"username": username, "password": password},
                               form_page="/console/login/")


@pytest.fixture
def console_user(fetch: Fetch) -> Callable[[], ConsoleUser]:
    return lambda: ConsoleUser(fetch)
