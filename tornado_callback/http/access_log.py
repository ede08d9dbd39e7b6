"""The access log: Tornado's line (status, method, URI, peer, time), without secrets in the URI.

A callback's host_config_key may come in the query string (the stock client
scripts send it in the body, but ``curl ...?host_config_key=...`` works too):
the value of any parameter whose name says key, password, token or secret is
written as REDACTED. Bodies and headers are never logged.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import parse_qsl, urlencode

import tornado.web
from tornado.httputil import HTTPServerRequest
from tornado.log import access_log

SECRET_NAME = re.compile(r"key|passw|token|secret", re.IGNORECASE)
REDACTED = "REDACTED"


def log_request(handler: tornado.web.RequestHandler) -> None:
    """The Application's ``log_function``: one line a request, at a level by status as Tornado does."""
    status = handler.get_status()
    level = logging.INFO if status < 400 else logging.WARNING if status < 500 else logging.ERROR
    if access_log.isEnabledFor(level):
        request = handler.request
        access_log.log(level, "%d %s %s (%s) %.2fms", status, request.method, redacted_uri(request),
                       request.remote_ip, 1000.0 * request.request_time())


def redacted_uri(request: HTTPServerRequest) -> str:
    if not request.query:
        return request.path
    # Names as the server reads them: host_config_%6Bey is host_config_key too.
    pairs = parse_qsl(request.query, keep_blank_values=True)
    if not any(SECRET_NAME.search(name) for name, _ in pairs):
        return request.uri or request.path
    return request.path + "?" + urlencode([(name, REDACTED if SECRET_NAME.search(name) else value)
                                           for name, value in pairs])
