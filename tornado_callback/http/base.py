"""APIHandler: JSON in and out, errors translated in one place, authentication, one paginator."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from http import HTTPStatus
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import orjson
import tornado.web

from tornado_callback.accounts.service import Principal
from tornado_callback.errors import DETAIL_FORBIDDEN, DETAIL_NOT_FOUND, DETAIL_UNAUTHENTICATED, ServiceError
from tornado_callback.http.routes import Endpoint
from tornado_callback.http.values import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE,
    MAX_PAGE_SIZE,
    MAX_SEARCH_LENGTH,
    bounded_int,
    parse_id,
)
from tornado_callback.plugin.resolver import CallbackRequest

if TYPE_CHECKING:  # the wiring imports every domain; handlers only name its type
    from tornado_callback.services import Services

REALM = 'Basic realm="tornado-callback"'
# Credentials of the caller are no business of resolvers (third-party code among them).
PRIVATE_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
IN_FLIGHT = "requests_in_flight"  # the Application setting holding RequestsInFlight
# Answers are written by orjson: an explanation took the standard library
# 17 us and orjson 2 (bench/NOTES.md). Datetimes go through ``str`` as
# before (orjson would write them with a "T"); what orjson refuses (integers
# past 64 bits, lone surrogates) the standard library writes.
ORJSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME
FALLBACK_ENCODER = json.JSONEncoder(default=str, separators=(",", ":"))

DEFAULT_DETAILS = {
    401: DETAIL_UNAUTHENTICATED,
    403: DETAIL_FORBIDDEN,
    404: DETAIL_NOT_FOUND,
    500: "A server error occurred.",
}


class APIError(tornado.web.HTTPError):
    """An HTTPError carrying the JSON body to send."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.body = body
        self.headers = headers or {}


def encode_json(body: Any) -> bytes:
    """``body`` as compact JSON (as AWX's API writes it), anything unknown as its ``str``."""
    try:
        return orjson.dumps(body, default=str, option=ORJSON_OPTIONS)
    except orjson.JSONEncodeError:
        return FALLBACK_ENCODER.encode(body).encode()  # ASCII: ensure_ascii


def bad_request(detail: str) -> APIError:
    return APIError(400, {"detail": detail})


class RequestsInFlight:
    """The requests this server is answering, so that a stopping server lets them finish.

    Requests are numbered as they start; the numbers of those not yet answered
    are kept (a future each cost more than the rest of this bookkeeping, on
    every request, for the one moment the server stops).
    """

    POLL_SECONDS = 0.02

    def __init__(self) -> None:
        self._started = 0
        self._pending: set[int] = set()

    def started(self) -> int:
        """The request's number, to hand to ``answered``."""
        self._started += 1
        self._pending.add(self._started)
        return self._started

    def answered(self, number: int) -> None:
        self._pending.discard(number)

    async def finish(self, timeout: float, *, later_ones: bool) -> None:
        """Wait, at most ``timeout`` seconds, for the requests in flight now (and, with
        ``later_ones``, for those that start meanwhile) to be answered."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        last = self._started
        while loop.time() < deadline and self._pending and (later_ones or min(self._pending) <= last):
            await asyncio.sleep(self.POLL_SECONDS)


class APIHandler(tornado.web.RequestHandler):
    """A handler of the API. What its methods raise is answered here: an ``APIError`` or
    a service's ``ServiceError`` with its status, headers and JSON body, anything
    else as a logged 500; so handlers call services without catching their refusals."""

    services: Services
    endpoint: Endpoint | None = None  # the route's declaration (none for unknown paths)

    def initialize(self, services: Services, endpoint: Endpoint | None = None) -> None:
        self.services = services
        if endpoint is not None:
            self.endpoint = endpoint
            # Tornado answers any other method 405 before ``prepare``, so before authentication.
            self.SUPPORTED_METHODS = endpoint.methods  # type: ignore[assignment]
        self._in_flight: RequestsInFlight = self.application.settings[IN_FLIGHT]
        self._number = self._in_flight.started()

    def on_finish(self) -> None:
        self._in_flight.answered(self._number)

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "application/json; charset=utf-8")

    def check_xsrf_cookie(self) -> None:
        """An API of tokens and Basic auth: no cookies, so no XSRF."""

    def write_json(self, body: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(encode_json(body))

    def send_error(self, status_code: int = 500, **kwargs: Any) -> None:
        error = kwargs.get("exc_info", (None, None, None))[1]
        # A service's refusal is an answer with its own status, not a server error.
        super().send_error(error.status if isinstance(error, ServiceError) else status_code, **kwargs)

    def log_exception(
        self, typ: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not isinstance(value, ServiceError):  # refusals are answered, not logged as crashes
            super().log_exception(typ, value, tb)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        error = kwargs.get("exc_info", (None, None, None))[1]
        body = getattr(error, "body", None)
        for name, value in getattr(error, "headers", {}).items():
            self.set_header(name, value)
        if status_code == 401:
            self.set_header("WWW-Authenticate", REALM)
        if status_code == 405:  # worded alike whether the route or the service refuses it, as AWX does
            body = {"detail": f'Method "{self.request.method}" not allowed.'}
            if self.endpoint is not None and self.request.method not in self.endpoint.methods:
                self.set_header("Allow", ", ".join(sorted(self.endpoint.methods)))
        if body is None:
            reason = DEFAULT_DETAILS.get(status_code) or HTTPStatus(status_code).phrase
            body = {"detail": reason}
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(encode_json(body))

    def request_headers(self) -> tuple[tuple[str, str], ...]:
        """The request's headers as resolvers may see them: without the caller's credentials."""
        return tuple(
            (name, value)
            for name, value in self.request.headers.get_all()
            if name.lower() not in PRIVATE_HEADERS
        )

    def client_address(self) -> str:
        """Who is calling: the TCP peer, or the client a trusted proxy names (x_forwarded_for)."""
        return self.services.chain.client_address(
            CallbackRequest(peer=self.request.remote_ip or "", headers=self.request_headers()))

    async def authenticated_user(self) -> Principal:
        principal = await self.services.accounts.authenticate(
            self.request.headers.get("Authorization"), self.client_address)
        if principal is None:
            raise APIError(401, {"detail": DETAIL_UNAUTHENTICATED
                                 if "Authorization" not in self.request.headers
                                 else "Invalid username/password."})
        return principal

    def int_argument(self, name: str, default: int, low: int, high: int) -> int:
        raw = self.get_query_argument(name, None)
        if raw is None:
            return default
        value = bounded_int(raw, low, high)
        if value is None:
            raise bad_request(f"{name} must be an integer between {low} and {high}.")
        return value

    def page_arguments(self) -> tuple[int, int]:
        """The ``page`` and ``page_size`` query arguments, checked."""
        return (self.int_argument("page", 1, 1, MAX_PAGE),
                self.int_argument("page_size", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE))

    def search_argument(self) -> str:
        """The ``search`` query argument ("" without one), checked."""
        search = self.get_query_argument("search", "") or ""
        if len(search) > MAX_SEARCH_LENGTH:
            raise bad_request(f"search must be at most {MAX_SEARCH_LENGTH} characters.")
        return search

    @staticmethod
    def object_id(text: str) -> int:
        """An id from the path; one no row can have is simply not found."""
        value = parse_id(text)
        if value is None:
            raise APIError(404, {"detail": DETAIL_NOT_FOUND})
        return value

    @staticmethod
    def check_page(count: int, page: int, page_size: int) -> None:
        """A page past the last is not found; the first page exists even when empty."""
        if page > 1 and (page - 1) * page_size >= count:
            raise APIError(404, {"detail": "Invalid page."})

    def paginate(self, items: Sequence[Any], page: int, page_size: int) -> list[Any]:
        """One page of an in-memory list."""
        self.check_page(len(items), page, page_size)
        start = (page - 1) * page_size
        return list(items[start:start + page_size])

    def page_link(self, page: int) -> str:
        """This request's URL at another page, every other query argument kept (as DRF's links do)."""
        args = {name: self.get_query_arguments(name) for name in self.request.query_arguments}
        args["page"] = [str(page)]
        return f"{self.request.path}?{urlencode(args, doseq=True)}"

    def write_page(self, count: int, results: list[Any], page: int, page_size: int) -> None:
        """One page of ``count`` items as AWX answers a list: count, next, previous, results."""
        self.check_page(count, page, page_size)
        self.write_json({
            "count": count,
            "next": self.page_link(page + 1) if page * page_size < count else None,
            "previous": self.page_link(page - 1) if page > 1 else None,
            "results": results,
        })


class NotFoundHandler(APIHandler):
    """Every unknown path: a JSON 404, never Tornado's HTML page."""

    def prepare(self) -> None:
        raise APIError(404, {"detail": DETAIL_NOT_FOUND})
