"""``serve``, ``worker`` and ``db upgrade``: running the server and its job workers."""

from __future__ import annotations

import argparse
import asyncio
import logging

from tornado_callback import __version__
from tornado_callback.app import run_workers, serve
from tornado_callback.cli.common import Subcommands, command, group, settings_command
from tornado_callback.config import LOG_FORMATS, LOG_LEVELS, ConfigError, Settings
from tornado_callback.demo import demo_banner, seed_demo
from tornado_callback.jobs.sandbox import job_sandbox
from tornado_callback.services import Services, base_url

log = logging.getLogger("tornado_callback")


async def cmd_db_upgrade(services: Services, args: argparse.Namespace) -> int:
    print("database is up to date")
    return 0


def run_serve(settings: Settings, args: argparse.Namespace) -> int:
    try:
        sandbox = job_sandbox(settings) if settings.workers else None
        unsandboxed = ""
    except ConfigError as e:
        if not args.demo:
            raise
        # The README's first command must run its job on a machine without
        # bubblewrap; a real server refuses instead (the error above).
        sandbox, unsandboxed = None, str(e)

    async def prepare() -> str | None:
        services = await Services.start(settings, reindex=True)
        try:
            for warning in await services.inventories.startup_warnings():
                log.warning("%s", warning)
            if args.demo:
                return demo_banner(await seed_demo(services), base_url(settings), unsandboxed)
            return None
        finally:
            await services.close()

    banner = asyncio.run(prepare())

    def ready(services: Services) -> None:
        print(f"tornado-callback {__version__} listening on {base_url(settings)}", flush=True)
        if banner:
            print(banner, flush=True)

    serve(settings, sandbox, on_ready=ready)
    return 0


def run_worker(settings: Settings, args: argparse.Namespace) -> int:
    asyncio.run(run_workers(settings))
    return 0


def add_log_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--log-level", choices=LOG_LEVELS, type=str.upper,
                        help="least level logged (default INFO; env TORNADO_CALLBACK_LOG_LEVEL)")
    parser.add_argument("--log-format", choices=LOG_FORMATS,
                        help="a line of text or a JSON object a record (default text; env TORNADO_CALLBACK_LOG_FORMAT)")


def add_commands(commands: Subcommands) -> None:
    p = settings_command(commands, "serve", run_serve, "run the server (creates or upgrades the schema)")
    p.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default 8052)")
    p.add_argument("--processes", type=int, help="server processes to fork (0: one per core)")
    p.add_argument("--certfile", help="TLS certificate (PEM)")
    p.add_argument("--keyfile", help="TLS private key (PEM)")
    p.add_argument("--workers", type=int, help="jobs run at once in each server process "
                   "(default 2; env TORNADO_CALLBACK_WORKERS)")
    p.add_argument("--no-worker", action="store_true", help="run no jobs here (an API-only node)")
    p.add_argument("--demo", action="store_true",
                   help="seed a localhost inventory, a template and an admin; print ready curl lines")
    add_log_flags(p)

    p = settings_command(commands, "worker", run_worker, "run job workers only (no HTTP server), until SIGTERM")
    p.add_argument("--workers", type=int, help="jobs run at once (default 2; env TORNADO_CALLBACK_WORKERS)")
    p.add_argument("--metrics-port", type=int, metavar="PORT", help="serve this worker's /metrics on PORT of "
                   "TORNADO_CALLBACK_HOST (default: none; env TORNADO_CALLBACK_METRICS_PORT)")
    add_log_flags(p)

    db = group(commands, "db", "database maintenance")
    command(db, "upgrade", cmd_db_upgrade, "apply migrations")
