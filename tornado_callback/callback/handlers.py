"""/api/v2/job_templates/{id}/callback/: the host's POST and the admin's GET."""

from __future__ import annotations

from collections.abc import Awaitable

import tornado.web

from tornado_callback.callback.bodies import (
    CALLBACK_ACCEPTED,
    CALLBACK_BODY,
    CALLBACK_EXPLAINED,
    FORM_MEDIA_TYPE,
    JSON_MEDIA_TYPE,
    parse_callback_body,
    too_large,
)
from tornado_callback.callback.service import simulated_request
from tornado_callback.http.base import APIHandler
from tornado_callback.http.routes import PAGE_PARAMETERS, Endpoint, Operation, search_parameter
from tornado_callback.plugin.resolver import CallbackRequest

DISCARD_CAP = 64 * 1024 * 1024


@tornado.web.stream_request_body
class CallbackHandler(APIHandler):
    # Set from the headers until the body is complete (``post`` runs then).
    _awaiting_body = False

    def prepare(self) -> Awaitable[None] | None:
        self._awaiting_body = self.request.method == "POST"
        self._chunks: list[bytes] = []
        self._size = 0
        self._too_large = False
        if self.request.method != "POST":
            return None
        # Chunked bodies have no declared length: read (and discard) past the
        # limit so that the client still gets a JSON 413, up to a hard cap.
        self.request.connection.set_max_body_size(self.limit + DISCARD_CAP)
        declared = self.request.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self.limit:
            # Answer before reading: the rest of the body is discarded and the
            # connection closed by Tornado.
            self._too_large = True
            return self._launch(*self.path_args, **self.path_kwargs)
        return None

    def compute_etag(self) -> None:
        """No ETag: an explanation carries the time each resolver took, so no two are alike."""
        return None

    @property
    def limit(self) -> int:
        return self.services.settings.max_body_size

    def data_received(self, chunk: bytes) -> None:
        if self._too_large:
            return
        self._size += len(chunk)
        if self._size > self.limit:
            self._too_large = True
            self._chunks.clear()
        else:
            self._chunks.append(chunk)

    async def post(self, template_id: str) -> None:
        self._awaiting_body = False
        await self._launch(template_id)

    def on_connection_close(self) -> None:
        super().on_connection_close()
        # A request cut off while its body streams in (the body timeout, a client
        # gone) never runs, so never finishes: a stopping server must not wait for it.
        if self._awaiting_body:
            self.on_finish()

    async def _launch(self, template_id: str) -> None:
        if self._too_large:
            body = too_large(self.limit)
        else:
            body = parse_callback_body(self.request.headers.get("Content-Type"), b"".join(self._chunks))
        accepted = await self.services.callbacks.launch(
            template_id, self.request.remote_ip or "", self.request_headers(), body
        )
        self.set_header("Location", accepted.url)
        self.write_json({"job": accepted.job_id, "url": accepted.url}, status=202)

    async def get(self, template_id: str) -> None:
        principal = await self.authenticated_user()
        request = self._evaluated_request()
        search = self.search_argument().lower()
        page, page_size = self.page_arguments()  # checked before any work
        explanation = await self.services.callbacks.explain(template_id, principal, request)
        hosts = [h for h in explanation["matching_hosts"] if search in h.lower()]
        explanation["matching_hosts"] = self.paginate(hosts, page, page_size)
        self.write_json(explanation)

    def _evaluated_request(self) -> CallbackRequest:
        """The caller's own request, or the one the admin asks to simulate."""
        address = self.get_query_argument("address", None)
        header_args = self.get_query_arguments("header")
        if address is None and not header_args:
            return CallbackRequest(peer=self.request.remote_ip or "", headers=self.request_headers())
        return simulated_request(self.request.remote_ip or "", address, header_args)


endpoints = [
    Endpoint("/api/v2/job_templates/{id}/callback/", CallbackHandler, (
        Operation("GET", "Which host this request (or a simulated one) would match, and why "
                  "(template admin role)", 200, response=CALLBACK_EXPLAINED, parameters=(
                      *PAGE_PARAMETERS,
                      search_parameter("Case-insensitive substring of the matching hosts' names"),
                      {"name": "address", "in": "query", "schema": {"type": "string"},
                       "description": "Evaluate as if the TCP peer were this IP address."},
                      {"name": "header", "in": "query", "description": "Name: value, repeatable",
                       "schema": {"type": "array", "items": {"type": "string"}}})),
        Operation("POST", "A host asks to be configured, proving itself with the template's key",
                  202, request=CALLBACK_BODY, response=CALLBACK_ACCEPTED, authenticated=False,
                  errors=(400, 403, 404, 413, 415, 429), request_types=(JSON_MEDIA_TYPE, FORM_MEDIA_TYPE)),
    )),
]
