"""``tornado-callback``: one entry point; each command group is a module of this package
(accounts, inventory, templates, jobs, callbacks, server), whose commands call the same
services as the REST API, never SQL."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence

from tornado_callback import __version__
from tornado_callback.accounts.service import AccountError
from tornado_callback.cli import accounts, callbacks, inventory, jobs, server, templates
from tornado_callback.cli.common import Command, CommandError
from tornado_callback.config import ConfigError, Settings, build_settings
from tornado_callback.errors import ServiceError
from tornado_callback.services import Services
from tornado_callback.store.database import DatabaseUnavailable
from tornado_callback.telemetry import logs

# A ServiceError is the admin API's refusal, printed in one line: the commands that
# write go through the API's service, as the local superuser, with its checks.
USER_ERRORS = (ConfigError, AccountError, ServiceError, DatabaseUnavailable)
DESCRIPTION = """\
A provisioning-callback server, compatible with AWX's job-template callback: a host
that boots asks POST /api/v2/job_templates/ID/callback/ (with the template's
host_config_key) to be configured, the server works out which inventory host is
calling, and runs the template's playbook on it.

Try it:   tornado-callback serve --demo
Set up:   inventory import NAME SOURCE (or inventory create, host add), then
          template create NAME --inventory NAME --playbook FILE --project-dir DIR,
          which prints the URL hosts call back to; then serve.
"""
EPILOG = """\
Every command works on the database of --database-url, else of
TORNADO_CALLBACK_DATABASE_URL, else tornado-callback.db in the working directory;
it says so when it has to create one. "tornado-callback COMMAND --help" shows a
command's options; docs/cli.md has the rest.
"""


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tornado-callback", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in (server, accounts, inventory, templates, jobs, callbacks):
        group.add_commands(commands)
    return parser


async def run_command(func: Command, settings: Settings, args: argparse.Namespace) -> int:
    services = await Services.start(settings)
    try:
        return await func(services, args)
    finally:
        await services.close()


def run(args: argparse.Namespace) -> int:
    flags = {k: getattr(args, k, None) for k in (
        "database_url", "plugins", "host", "port", "processes", "certfile", "keyfile", "workers",
        "log_level", "log_format", "metrics_port")}
    if getattr(args, "no_worker", False):
        flags["workers"] = 0
    settings = build_settings(**flags)
    logs.configure(settings.log_level, settings.log_format)
    if args.settings_func is not None:
        return args.settings_func(settings, args)
    return asyncio.run(run_command(args.func, settings, args))


def main(argv: Sequence[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    logs.configure()  # until the settings say otherwise, and for an error in them
    try:
        status = run(args)
        sys.stdout.flush()  # now, not at exit, so that a closed pipe is handled below
        return status
    except (CommandError, *USER_ERRORS) as e:
        print(f"tornado-callback: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader stopped reading (``jobs list | head -5``): it has what it wanted.
        # What is still buffered must not be flushed at exit, into the same error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 2
