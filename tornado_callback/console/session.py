"""ConsoleHandler: the API's handler, answering in HTML, with a login session in a signed cookie.

The cookie carries the user's id and a seal of their password, signed with a
key derived from the server's secret key, so that every process and machine
sharing that key accepts it. The user is read again on every request: a
deleted user's session, or one opened before a new password, ends at once.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import tornado.web

from tornado_callback.accounts.service import Principal
from tornado_callback.errors import ServiceError
from tornado_callback.http.base import APIHandler

HERE = Path(__file__).parent
TEMPLATES = str(HERE / "templates")
STATIC = str(HERE / "static")
PREFIX = "/console/"
STATIC_URL_SETTINGS = {"static_path": STATIC, "static_url_prefix": f"{PREFIX}static/"}
LOGIN_URL = f"{PREFIX}login/"
SESSION_COOKIE = "tcb_console"
# A stolen cookie is worth at most this long; logging in again starts a new day.
SESSION_DAYS = 1
# Nothing but our own files: a script that slipped into a page through a value would not run.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    # A page may carry a key (a template admin's curl line): no proxy or browser disk keeps one.
    "Cache-Control": "no-store",
}


class ConsoleHandler(APIHandler):
    """A console page. Handlers that need no session (the login) say so with ``needs_session``."""

    needs_session = True
    principal: Principal | None = None

    # The API turns XSRF off (it takes no cookies); console forms post with Tornado's token.
    check_xsrf_cookie = tornado.web.RequestHandler.check_xsrf_cookie

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "text/html; charset=utf-8")
        for name, value in SECURITY_HEADERS.items():
            self.set_header(name, value)

    def get_template_path(self) -> str:
        return TEMPLATES

    def static_url(self, path: str, include_host: bool | None = None, **kwargs: Any) -> str:
        """Our files under /console/static/, versioned by their hash (served with a long cache time)."""
        return tornado.web.StaticFileHandler.make_static_url(STATIC_URL_SETTINGS, path)

    def over_https(self) -> bool:
        """Served over TLS, or to a trusted proxy (one whose X-Forwarded-For the resolvers
        believe, so that the client differs from the peer) that says its client used https."""
        if self.request.protocol == "https":
            return True
        forwarded = self.request.headers.get("X-Forwarded-Proto", "").strip().lower() == "https"
        return forwarded and self.client_address() != self.request.remote_ip

    def set_cookie(self, name: str, value: str | bytes, domain: str | None = None,
                   expires: float | tuple[int, ...] | datetime.datetime | None = None,
                   path: str = PREFIX, expires_days: float | None = None, **kwargs: Any) -> None:
        """Every console cookie (the session's, the XSRF token's) is the console's alone, out of
        scripts' reach, not sent by other sites' requests, and over TLS only when served so."""
        kwargs.update(httponly=True, samesite="Lax", secure=self.over_https())
        super().set_cookie(name, value, domain, expires, PREFIX, expires_days, **kwargs)

    @property
    def _session_secret(self) -> bytes:
        return self.services.secrets.derived_key("console session cookie")

    async def start_session(self, principal: Principal) -> None:
        seal = await self.services.accounts.session_seal(principal.id, self._session_secret)
        value = f"{principal.id}:{seal}"
        self.set_cookie(SESSION_COOKIE, tornado.web.create_signed_value(self._session_secret, SESSION_COOKIE, value))

    async def session_principal(self) -> Principal | None:
        value = tornado.web.decode_signed_value(
            self._session_secret, SESSION_COOKIE, self.get_cookie(SESSION_COOKIE), max_age_days=SESSION_DAYS)
        user_id, _, seal = (value or b"").decode().partition(":")
        if not user_id.isdigit() or not seal:
            return None
        return await self.services.accounts.session_principal(int(user_id), seal, self._session_secret)

    async def prepare(self) -> None:
        self.principal = self.current_user = await self.session_principal()
        if self.principal is None and self.needs_session:
            self.refuse_anonymous()

    def refuse_anonymous(self) -> None:
        """Without a session, a page sends the browser to the login; a form posted is refused."""
        if self.request.method not in ("GET", "HEAD"):
            raise tornado.web.HTTPError(403)
        self.redirect(f"{LOGIN_URL}?{urlencode({'next': self.request.uri})}")

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        error = kwargs.get("exc_info", (None, None, None))[1]
        for name, value in getattr(error, "headers", {}).items():
            self.set_header(name, value)
        self.set_header("Content-Type", "text/html; charset=utf-8")
        message = str(error) if isinstance(error, ServiceError) else self._reason
        self.render("error.html", status=status_code, message=message)
