"""The Tornado application, the ``serve`` loop and the ``worker`` loop."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import ssl
from collections.abc import Callable
from socket import socket

import tornado.web
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from tornado_callback import __version__
from tornado_callback.admin import handlers as admin
from tornado_callback.callback import handlers as callback
from tornado_callback.config import ConfigError, Settings
from tornado_callback.console.pages import console_routes
from tornado_callback.http import ping, prometheus, root
from tornado_callback.http.access_log import log_request
from tornado_callback.http.base import IN_FLIGHT, NotFoundHandler, RequestsInFlight
from tornado_callback.http.connections import CappedHTTPServer, connection_cap, raise_descriptor_limit
from tornado_callback.http.routes import Endpoint
from tornado_callback.identity import handlers as identity
from tornado_callback.inventory import handlers as inventory
from tornado_callback.jobs import handlers as jobs
from tornado_callback.jobs.sandbox import Sandbox, job_sandbox
from tornado_callback.services import Services
from tornado_callback.telemetry import metrics

log = logging.getLogger("tornado_callback")
SHUTDOWN_GRACE_SECONDS = 20.0
# Bytes read from a connection at a time. Tornado allocates a zero-filled
# buffer of this size for every read (two a request): at its default, 64 KiB,
# clearing them cost more than parsing the request (bench/NOTES.md). A
# callback with its headers fits in 4 KiB; a larger request takes more reads.
READ_CHUNK_BYTES = 4 * 1024
# Allocations (less deallocations) between young garbage collections while serving (default 700).
SERVING_GC_THRESHOLD = 10_000


def api_endpoints() -> list[Endpoint]:
    """Every endpoint the application serves: each domain's, declared beside its handlers."""
    # The callback's first: Tornado tries the routes in order, and most requests are callbacks
    # (0.6 % of a POST's instructions under callgrind, against five routes before it).
    return [*callback.endpoints, *root.endpoints, *ping.endpoints, *prometheus.endpoints, *jobs.endpoints,
            *inventory.endpoints, *identity.endpoints, *admin.endpoints]


def make_app(services: Services, endpoints: list[Endpoint] | None = None) -> tornado.web.Application:
    """The application serving ``endpoints`` (default: every one, ``api_endpoints``)."""
    args = {"services": services}
    # The console comes with the whole API, after it: a callback is routed as it was without it.
    console = console_routes(services) if endpoints is None else []
    endpoints = endpoints or api_endpoints()
    return tornado.web.Application(
        [*((e.pattern, e.handler, {**args, "endpoint": e}) for e in endpoints), *console],
        default_handler_class=NotFoundHandler,
        default_handler_args=args,
        # Tornado's own "Uncaught exception" log carries no request body or
        # headers; keep it that way (no debug mode, no serve_traceback).
        serve_traceback=False,
        log_function=log_request,  # without secrets in query strings
        requests_in_flight=RequestsInFlight(),  # read by handlers under IN_FLIGHT
        endpoints=endpoints,  # under ENDPOINTS: the OpenAPI document describes exactly these routes
    )


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    if not settings.certfile:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(settings.certfile, settings.keyfile)
    except OSError as e:  # ssl.SSLError is one too
        files = " and ".join(filter(None, (settings.certfile, settings.keyfile)))
        raise ConfigError(f"cannot load the TLS certificate from {files}: {e.strerror or e}") from e
    return context


def make_server(services: Services) -> CappedHTTPServer:
    return http_server(make_app(services), services.settings, ssl_context(services.settings))


def http_server(app: tornado.web.Application, settings: Settings, tls: ssl.SSLContext | None) -> CappedHTTPServer:
    # xheaders=False: Tornado's xheaders trusts X-Forwarded-For from anyone;
    # the x_forwarded_for resolver trusts it only from configured proxies.
    return CappedHTTPServer(
        app,
        xheaders=False,
        ssl_options=tls,
        max_body_size=settings.max_body_size,
        chunk_size=READ_CHUNK_BYTES,
        idle_connection_timeout=settings.header_timeout,  # Tornado's name for the headers' timeout
        body_timeout=settings.body_timeout,
        idle_timeout=settings.idle_timeout,
        max_connections=connection_cap(settings.max_connections),
    )


def serve(
    settings: Settings, sandbox: Sandbox | None, *, on_ready: Callable[[Services], object] | None = None
) -> None:
    """Bind, fork if asked, and serve until SIGTERM or SIGINT; jobs run in ``sandbox`` (sandbox.job_sandbox)."""
    tls = ssl_context(settings)
    raise_descriptor_limit()
    try:
        sockets = bind_sockets(settings.port, settings.host)
    except OSError as e:
        raise ConfigError(f"cannot listen on {settings.host}:{settings.port}: {e.strerror}") from e
    processes = settings.processes if settings.processes > 0 else (os.cpu_count() or 1)
    if processes > 1:
        metrics.share_between_processes()  # before the fork, and before any metric is reported into
    index = fork_children(processes) if processes > 1 else 0
    asyncio.run(_serve(settings, sandbox, sockets, tls, on_ready if index == 0 else None))


def fork_children(count: int) -> int:
    """Fork ``count`` server processes sharing the listening sockets; returns the child's index.

    The parent never returns: it forwards SIGTERM/SIGINT to the children (which
    Tornado's ``fork_processes`` does not, leaving orphans behind) and exits
    when they have all stopped, non-zero if any of them failed.
    """
    children: set[int] = set()
    for index in range(count):
        pid = os.fork()
        if pid == 0:
            return index
        children.add(pid)

    def forward(signum: int, _frame: object) -> None:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    failed = False
    while children:
        pid, status = os.wait()
        children.discard(pid)
        metrics.process_stopped(pid)
        if os.waitstatus_to_exitcode(status) != 0 and not failed:
            failed = True
            forward(signal.SIGTERM, None)  # one process failing stops the rest: supervisors restart us
    metrics.stop_sharing()
    os._exit(1 if failed else 0)


async def _serve(
    settings: Settings,
    sandbox: Sandbox | None,
    sockets: list[socket],
    tls: ssl.SSLContext | None,
    on_ready: Callable[[Services], object] | None,
) -> None:
    services = await Services.start(settings, upgrade=False)
    try:
        # Job slots per settings.workers (0 with --no-worker: only the lease sweeper runs).
        workers = services.start_workers(sandbox)
    except ConfigError:
        await services.close()
        raise
    services.refresher.start()
    app = make_app(services)
    server = http_server(app, settings, tls)
    server.add_sockets(sockets)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    if on_ready is not None:
        result = on_ready(services)
        if asyncio.iscoroutine(result):
            await result
    # What starting built (modules, the schema, the plugins, the services) lives
    # until the server stops: leave it out of every garbage collection from now
    # on. Each full collection walked all of it: under GET load collecting took
    # 7 % of the server's CPU, 2.4 % after (bench/NOTES.md). Collected
    # first, so that no garbage of the start is kept for good.
    gc.collect()
    gc.freeze()
    # A young collection ran whenever the objects of the requests in flight
    # outnumbered the threshold (700), about once per 10 POSTs, each promoting
    # what those requests held to the older generations, whose collections
    # then stopped every request for up to 30-60 ms on a busy machine. At
    # 10,000, 15 s of POSTs at 100,000 hosts saw one collection instead of
    # about 1,000 (bench/NOTES.md, issue 18). Cyclic garbage is still collected.
    gc.set_threshold(SERVING_GC_THRESHOLD, *gc.get_threshold()[1:])
    log.info("tornado-callback %s serving on %s:%s (process %d), database %s, resolvers in order: %s; "
             "at most %d connections at once", __version__, settings.host, settings.port, os.getpid(),
             database_kind(services), ", ".join(r.name for r in services.chain.resolvers) or "none",
             server.max_connections)
    try:
        await stop.wait()
    finally:
        log.info("shutting down (process %d): answering the requests in flight, then stopping", os.getpid())
        server.stop()
        # Answer what was asked before the signal, then close the connections;
        # requests cut off by that still finish their work before the database closes.
        in_flight = app.settings[IN_FLIGHT]
        await in_flight.finish(SHUTDOWN_GRACE_SECONDS, later_ones=False)
        await server.close_all_connections()
        await in_flight.finish(SHUTDOWN_GRACE_SECONDS, later_ones=True)
        await workers.stop()
        await services.close()
        log.info("stopped (process %d)", os.getpid())


def database_kind(services: Services) -> str:
    return "postgresql" if services.db.is_postgresql else "sqlite"


async def run_workers(settings: Settings) -> None:
    """``tornado-callback worker``: job workers without an HTTP server, until SIGTERM or SIGINT."""
    if settings.workers < 1:
        raise ConfigError("a worker process needs at least one job slot (TORNADO_CALLBACK_WORKERS >= 1)")
    sandbox = job_sandbox(settings)
    services = await Services.start(settings)
    try:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        workers = services.start_workers(sandbox)
        # Its jobs' durations are in no server's /metrics: a worker serves its own when asked to.
        scrape = worker_metrics_server(services) if settings.metrics_port else None
        print(f"tornado-callback worker {workers.worker_id} running "
              f"{settings.workers} job slot(s)", flush=True)
        log.info("tornado-callback %s worker %s started (process %d), database %s, %d job slot(s)%s", __version__,
                 workers.worker_id, os.getpid(), database_kind(services), settings.workers,
                 f", /metrics on {settings.host}:{settings.metrics_port}" if scrape else "")
        await stop.wait()
        log.info("worker %s shutting down: waiting for its jobs to stop", workers.worker_id)
        if scrape is not None:
            scrape.stop()
        await workers.stop()
    finally:
        await services.close()
    log.info("stopped (process %d)", os.getpid())


def worker_metrics_server(services: Services) -> HTTPServer:
    """/metrics alone, on ``metrics_port`` of ``host``."""
    settings = services.settings
    server = HTTPServer(make_app(services, prometheus.endpoints), xheaders=False)
    try:
        server.listen(settings.metrics_port, settings.host)
    except OSError as e:
        raise ConfigError(f"cannot serve /metrics on {settings.host}:{settings.metrics_port}: {e.strerror}") from e
    return server
