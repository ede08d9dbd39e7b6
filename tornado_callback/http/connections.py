"""Connections: the descriptor limit, and an HTTP server that never runs out of descriptors.

Every connection is a descriptor. Tornado accepts for as long as the listening
socket is readable; once the process has no descriptor left, ``accept()``
fails at once, the socket stays readable, and the loop spins on it, logging a
traceback for every failure (1,100 slow connections under a limit of 1,024:
18 s of CPU in 30 s, 53 MB of log, no ping answered). Here a server holds at
most ``max_connections`` connections, fewer than its descriptors. At the cap it
stops accepting (the kernel queues new callers), closes the connections that
have sent no request for a second (slow or idle ones: a client sends its
request with its connection), and accepts again as soon as connections close.
"""

from __future__ import annotations

import copy
import errno
import logging
import math
import resource
import socket
import time
from collections.abc import Awaitable, Iterable
from typing import Any, cast

from tornado import httputil
from tornado.http1connection import HTTP1ServerConnection
from tornado.httpserver import HTTPServer
from tornado.ioloop import IOLoop
from tornado.iostream import IOStream

log = logging.getLogger("tornado_callback")

# Descriptors kept for everything but connections: the database (PostgreSQL's
# pool holds up to 30), each job run's pipes and bubblewrap, inventory syncs,
# DNS sockets, log files.
SPARE_DESCRIPTORS = 128
# Connections accepted per wake-up before other work runs (Tornado's choice too).
ACCEPTS_PER_WAKEUP = 128
# At the cap, a connection that has waited this long for a request's headers is
# closed: a client sends its request as soon as it is connected.
AT_CAP_REQUEST_WAIT = 1.0
# The cap may be reached every second under attack: say so at most this often.
CAP_LOG_INTERVAL = 60.0
# accept() failing for want of a resource: wait for some to be freed.
OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


def raise_descriptor_limit() -> int:
    """Raise this process's soft limit on open descriptors to its hard limit; the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as e:
            log.warning("cannot raise the limit on open files from %d to %d: %s", soft, hard, e)
        else:
            soft = hard
    return soft


def connection_cap(requested: int) -> int:
    """At most ``requested`` connections (0: no wish), and fewer than the descriptors allow."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    allowed = max(soft - SPARE_DESCRIPTORS, soft // 2)
    if requested > allowed:
        log.warning("max_connections %d is more than a limit of %d open files allows: at most %d",
                    requested, soft, allowed)
    return min(requested, allowed) if requested else allowed


class CappedHTTPServer(HTTPServer):
    """An ``HTTPServer`` with at most ``max_connections`` connections open, whose kept-alive
    connections wait ``idle_timeout`` for their next request."""

    def initialize(self, *args: Any, max_connections: int, idle_timeout: float, **kwargs: Any) -> None:
        super().initialize(*args, **kwargs)
        self.max_connections = max_connections
        # Tornado times a request's headers from when the connection starts
        # waiting for them: on a kept-alive connection, the wait between requests too.
        self.kept_alive_params = copy.copy(self.conn_params)
        self.kept_alive_params.header_timeout = idle_timeout
        self._open = 0
        # Connections waiting for a request's headers, and since when: oldest first.
        self._waiting: dict[HTTP1ServerConnection, float] = {}
        self._listening: list[socket.socket] = []
        self._accepting = False
        self._retry: object | None = None
        self._logged_at = -math.inf

    def add_sockets(self, sockets: Iterable[socket.socket]) -> None:
        self._listening += sockets
        self._accept_again()

    def stop(self) -> None:
        self._stop_accepting()
        for sock in self._listening:
            sock.close()
        self._listening = []

    def handle_stream(self, stream: IOStream, address: tuple[Any, ...]) -> None:
        self._open += 1
        super().handle_stream(stream, address)

    def start_request(self, server_conn: object, request_conn: httputil.HTTPConnection) -> httputil.HTTPMessageDelegate:
        connection = cast(HTTP1ServerConnection, server_conn)
        self._waiting[connection] = time.monotonic()
        return _HeadersArrival(super().start_request(server_conn, request_conn), self, connection)

    def _headers_arrived(self, server_conn: HTTP1ServerConnection) -> None:
        self._waiting.pop(server_conn, None)
        server_conn.params = self.kept_alive_params  # for the requests after this one

    def on_close(self, server_conn: object) -> None:
        super().on_close(server_conn)
        self._open -= 1
        self._waiting.pop(cast(HTTP1ServerConnection, server_conn), None)
        if not self._accepting and self._open < self.max_connections:
            self._accept_again()

    def _accept(self, sock: socket.socket, _events: int) -> None:
        for _ in range(ACCEPTS_PER_WAKEUP):
            if self._open >= self.max_connections:
                self._pause(f"{self._open} connections are open, the most allowed (max_connections)")
                return
            try:
                connection, address = sock.accept()
            except BlockingIOError:
                return
            except OSError as e:
                if e.errno in OUT_OF_RESOURCES:
                    self._pause(f"accepting a connection failed: {e.strerror}")
                    return
                # An error of that one connection (ECONNABORTED; Linux reports a
                # connection's pending network errors this way too): the next one.
                continue
            # What Tornado's own accept handler calls: TLS, the stream, handle_stream.
            self._handle_connection(connection, address)

    def _pause(self, reason: str) -> None:
        self._stop_accepting()
        now = time.monotonic()
        if now - self._logged_at >= CAP_LOG_INTERVAL:
            self._logged_at = now
            log.warning("not accepting connections for now: %s; closing those that have sent no request "
                        "for %gs (said at most once every %gs)", reason, AT_CAP_REQUEST_WAIT, CAP_LOG_INTERVAL)
        self._retry = IOLoop.current().call_later(AT_CAP_REQUEST_WAIT, self._close_waiting)

    def _close_waiting(self) -> None:
        """Make room: close the connections that have long waited for a request. Their
        closing resumes accepting; so does this when the cap was not the reason."""
        self._retry = None
        deadline = time.monotonic() - AT_CAP_REQUEST_WAIT
        for server_conn, since in list(self._waiting.items()):
            if since > deadline:
                break
            del self._waiting[server_conn]
            server_conn.stream.close()
        if self._open < self.max_connections:
            self._accept_again()
        else:
            self._retry = IOLoop.current().call_later(AT_CAP_REQUEST_WAIT, self._close_waiting)

    def _accept_again(self) -> None:
        self._cancel_retry()
        if not self._accepting and self._listening:
            for sock in self._listening:
                IOLoop.current().add_handler(sock, self._accept, IOLoop.READ)
            self._accepting = True

    def _stop_accepting(self) -> None:
        self._cancel_retry()
        if self._accepting:
            for sock in self._listening:
                IOLoop.current().remove_handler(sock)
            self._accepting = False

    def _cancel_retry(self) -> None:
        if self._retry is not None:
            IOLoop.current().remove_timeout(self._retry)
            self._retry = None


class _HeadersArrival(httputil.HTTPMessageDelegate):
    """Passes a request on, telling the server when its headers have arrived."""

    def __init__(
        self, delegate: httputil.HTTPMessageDelegate, server: CappedHTTPServer, server_conn: HTTP1ServerConnection
    ) -> None:
        self.delegate = delegate
        self.server = server
        self.server_conn = server_conn

    def headers_received(
        self, start_line: httputil.RequestStartLine | httputil.ResponseStartLine, headers: httputil.HTTPHeaders
    ) -> Awaitable[None] | None:
        self.server._headers_arrived(self.server_conn)
        return self.delegate.headers_received(start_line, headers)

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        return self.delegate.data_received(chunk)

    def finish(self) -> None:
        self.delegate.finish()

    def on_connection_close(self) -> None:
        self.delegate.on_connection_close()
