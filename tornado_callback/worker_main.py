"""``tornado-callback worker``: job workers without an HTTP server, until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import signal

from tornado_callback.config import ConfigError, Settings
from tornado_callback.executor import start_workers
from tornado_callback.sandbox import job_sandbox
from tornado_callback.services import Services


async def run_workers(settings: Settings) -> None:
    if settings.workers < 1:
        raise ConfigError("a worker process needs at least one job slot (TORNADO_CALLBACK_WORKERS >= 1)")
    sandbox = job_sandbox(settings)
    services = await Services.start(settings)
    try:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        workers = start_workers(services, sandbox)
        print(f"tornado-callback worker {workers.worker_id} running "
              f"{settings.workers} job slot(s)", flush=True)
        await stop.wait()
        await workers.stop()
    finally:
        await services.close()
