"""The Tornado application and the ``serve`` loop."""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
from collections.abc import Callable
from socket import socket

import tornado.web
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
from tornado.process import fork_processes, task_id

from tornado_callback.config import ConfigError, Settings
from tornado_callback.handlers.admin import api_routes
from tornado_callback.handlers.base import NotFoundHandler
from tornado_callback.services import Services

log = logging.getLogger("tornado_callback")

# Every path is served with and without its trailing slash: the stock client
# scripts treat a redirect as a failure.
# Ping, the callback and the admin API are declared in admin.endpoints and routed
# by ``api_routes()``, from the same declarations the OpenAPI document is built from.
ROUTES: list[tuple[str, type[tornado.web.RequestHandler]]] = []


def make_app(services: Services) -> tornado.web.Application:
    args = {"services": services}
    return tornado.web.Application(
        [(pattern, handler, args) for pattern, handler in ROUTES]
        + [(pattern, handler, {**args, **extra}) for pattern, handler, extra in api_routes()],
        default_handler_class=NotFoundHandler,
        default_handler_args=args,
        # Tornado's own "Uncaught exception" log carries no request body or
        # headers; keep it that way (no debug mode, no serve_traceback).
        serve_traceback=False,
    )


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    if not settings.certfile:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(settings.certfile, settings.keyfile)
    return context


def make_server(services: Services) -> HTTPServer:
    # xheaders=False: Tornado's xheaders trusts X-Forwarded-For from anyone;
    # the x_forwarded_for resolver trusts it only from configured proxies.
    return HTTPServer(
        make_app(services),
        xheaders=False,
        ssl_options=ssl_context(services.settings),
        max_body_size=services.settings.max_body_size,
    )


def serve(settings: Settings, *, on_ready: Callable[[Services], object] | None = None) -> None:
    """Bind, fork if asked, and serve until SIGTERM or SIGINT."""
    try:
        sockets = bind_sockets(settings.port, settings.host)
    except OSError as e:
        raise ConfigError(f"cannot listen on {settings.host}:{settings.port}: {e.strerror}") from e
    if settings.processes != 1:
        fork_processes(settings.processes)
    asyncio.run(_serve(settings, sockets, on_ready if task_id() in (None, 0) else None))


async def _serve(
    settings: Settings, sockets: list[socket], on_ready: Callable[[Services], object] | None
) -> None:
    services = await Services.start(settings, upgrade=False)
    server = make_server(services)
    server.add_sockets(sockets)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    if on_ready is not None:
        result = on_ready(services)
        if asyncio.iscoroutine(result):
            await result
    log.info("serving on %s:%s", settings.host, settings.port)
    try:
        await stop.wait()
    finally:
        server.stop()
        await server.close_all_connections()
        await services.close()
