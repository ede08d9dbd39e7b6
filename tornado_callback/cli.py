"""``tornado-callback``: one entry point, argparse sub-commands that call services, never SQL."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import getpass
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tornado_callback import __version__
from tornado_callback.accounts.service import LOCAL_ADMIN, AccountError
from tornado_callback.admin.catalog import new_host_config_key
from tornado_callback.app import run_workers, serve
from tornado_callback.callback.service import simulated_request
from tornado_callback.config import ConfigError, Settings, build_settings
from tornado_callback.demo import demo_banner, seed_demo
from tornado_callback.errors import NotFound, ServiceError
from tornado_callback.http.values import INT_MAX, api_datetime, parse_id
from tornado_callback.identity.service import PROVIDERS
from tornado_callback.inventory.ansible_inventory import SOURCE_KINDS
from tornado_callback.inventory.sync import import_source
from tornado_callback.jobs.playbook_run import RunSetupError, playbook_path
from tornado_callback.jobs.sandbox import job_sandbox
from tornado_callback.plugin.manager import discover_resolvers, make_plugin_manager
from tornado_callback.services import Services, base_url
from tornado_callback.store.database import DatabaseUnavailable

if TYPE_CHECKING:
    from tornado_callback.store.models import InventoryUpdate

# A ServiceError is the admin API's refusal, printed in one line: the commands that
# create things go through the API's service, as the local superuser, with its checks.
USER_ERRORS = (ConfigError, AccountError, ServiceError, DatabaseUnavailable)
log = logging.getLogger("tornado_callback")
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
Command = Callable[[Services, argparse.Namespace], Awaitable[int]]


class CommandError(Exception):
    """A command that cannot do what was asked; printed without a traceback."""


def callback_url(settings: Settings, template_id: int) -> str:
    return f"{base_url(settings)}/api/v2/job_templates/{template_id}/callback/"


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[str(c) for c in headers]] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def object_id(text: str) -> int:
    """An id argument, bounded as the API bounds ids (argparse turns the error into one line)."""
    value = parse_id(text)
    if value is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not an id (1 to {INT_MAX})")
    return value


def moment(value: dt.datetime | None) -> str:
    return api_datetime(value, "seconds") or ""


def parse_var(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise CommandError(f"--var {text!r}: expected KEY=VALUE")
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return key, value


async def cmd_db_upgrade(services: Services, args: argparse.Namespace) -> int:
    print("database is up to date")
    return 0


async def cmd_user_create(services: Services, args: argparse.Namespace) -> int:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = getpass.getpass(f"Password for {args.name}: ")
    else:
        # Without a terminal to ask on, a user would be created without a password, unsaid.
        raise CommandError("no terminal to ask for the password: give it on stdin with --password-stdin "
                           "(an empty line makes a user who signs in with tokens only)")
    user = await services.accounts.create_user(args.name, password or None, superuser=args.superuser)
    print(f"created user {user.username} (id {user.id}{', superuser' if user.is_superuser else ''})"
          f"{'' if password else ' without a password: it signs in with tokens only'}")
    return 0


async def cmd_token_create(services: Services, args: argparse.Namespace) -> int:
    token = await services.accounts.create_token(args.name, args.description)
    print(token)
    print(f"Token for {args.name}; it is shown only now.", file=sys.stderr)
    return 0


async def cmd_inventory_create(services: Services, args: argparse.Namespace) -> int:
    inventory = await services.admin.create("inventories", LOCAL_ADMIN, {
        "name": args.name, "description": args.description,
        "register_verified_hosts": args.register_verified_hosts,
        **({"registration_group": args.registration_group} if args.registration_group is not None else {}),
    })
    registering = (f"; registers verified hosts in group {inventory['registration_group']}"
                   if inventory["register_verified_hosts"] else "")
    print(f"created inventory {inventory['name']} (id {inventory['id']}){registering}")
    return 0


def print_update(update: Any) -> int:
    """An inventory update's outcome; exit status 1 when it failed."""
    print(f"inventory update {update.id}: {update.status}; {update.hosts_added} added, "
          f"{update.hosts_updated} updated, {update.hosts_removed} removed")
    if update.status != "successful":
        print(f"{update.job_explanation}\n{update.result_stdout}".rstrip(), file=sys.stderr)
        return 1
    return 0


async def import_inventory(
    services: Services, inventory_ref: str, path: str, payload: str | None = None,
    *, overwrite: bool = False, overwrite_vars: bool = False,
) -> InventoryUpdate:
    """``inventory import``: into the inventory named (created if missing), recorded as an
    update of its source for ``path`` (created if missing); ``payload``, when given, is the
    ``ansible-inventory --list`` JSON read from stdin."""
    try:
        inventory = await services.admin.named("inventories", LOCAL_ADMIN, inventory_ref)
    except NotFound:
        inventory = await services.admin.create("inventories", LOCAL_ADMIN, {"name": inventory_ref})
    name, source_path = import_source(path if payload is None else None)
    source = await services.admin.create_or_update("inventory_sources", LOCAL_ADMIN, {
        "inventory": inventory["id"], "name": name, "source": "file", "source_path": source_path,
        "overwrite": overwrite, "overwrite_vars": overwrite_vars,
    })
    return await services.inventory_sync.import_into(source["id"], payload)


async def cmd_inventory_import(services: Services, args: argparse.Namespace) -> int:
    payload = sys.stdin.read() if args.source == "-" else None
    update = await import_inventory(services, args.name, args.source, payload,
                                    overwrite=args.overwrite, overwrite_vars=args.overwrite_vars)
    return print_update(update)


async def cmd_inventory_sync(services: Services, args: argparse.Namespace) -> int:
    return print_update(await services.inventory_sync.update(args.source_id))


async def cmd_inventory_source_add(services: Services, args: argparse.Namespace) -> int:
    inventory = await services.admin.named("inventories", LOCAL_ADMIN, args.inventory)
    # Absolute, so that the server finds it whatever its working directory; a
    # path that does not exist is passed on as given (ansible also reads "a,b," host lists).
    path = str(Path(args.path).resolve()) if Path(args.path).exists() else args.path
    source = await services.admin.create("inventory_sources", LOCAL_ADMIN, {
        "inventory": inventory["id"], "name": args.name, "source": args.source, "source_path": path,
        "update_on_launch": args.update_on_launch, "update_cache_timeout": args.cache_timeout,
        "overwrite": args.overwrite, "overwrite_vars": args.overwrite_vars, "timeout": args.timeout,
    })
    print(f"created inventory source {source['name']} (id {source['id']}) of inventory {inventory['name']}")
    return 0


async def cmd_host_add(services: Services, args: argparse.Namespace) -> int:
    variables = dict(parse_var(v) for v in args.var)
    inventory = await services.admin.named("inventories", LOCAL_ADMIN, args.inventory)
    host = await services.admin.create_or_update("hosts", LOCAL_ADMIN, {
        "inventory": inventory["id"], "name": args.name, "variables": variables, "enabled": True,
    })
    print(f"saved host {host['name']} (id {host['id']}) in inventory {inventory['name']}")
    return 0


async def cmd_template_create(services: Services, args: argparse.Namespace) -> int:
    inventory = await services.admin.named("inventories", LOCAL_ADMIN, args.inventory)
    template = await services.admin.create("job_templates", LOCAL_ADMIN, {
        "name": args.name,
        "inventory": inventory["id"],
        "playbook": args.playbook,
        # Absolute: jobs run in the server's working directory, not this one.
        "project_dir": str(Path(args.project_dir).absolute()) if args.project_dir else "",
        "host_config_key": new_host_config_key() if args.host_config_key is None else args.host_config_key,
        "ask_variables_on_launch": args.ask_variables_on_launch,
    })
    print(f"created job template {template['name']} (id {template['id']})")
    print(f"host_config_key: {template['host_config_key']}")
    print(f"callback URL:    {callback_url(services.settings, template['id'])}")
    try:
        playbook_path(template["project_dir"], template["playbook"])
    except RunSetupError as e:  # the project may be deployed later: a warning, not a refusal
        print(f"tornado-callback: warning: {str(e).rstrip('.')}; the template's jobs fail until that is fixed",
              file=sys.stderr)
    return 0


async def cmd_jobs_list(services: Services, args: argparse.Namespace) -> int:
    count, jobs = await services.jobs.page(LOCAL_ADMIN, page_size=args.limit)
    print_table(
        ("ID", "TEMPLATE", "STATUS", "LAUNCH", "LIMIT", "RESOLVED BY", "CREATED"),
        [(j.id, j.job_template_id, j.status, j.launch_type, j.limit, j.resolved_by,
          moment(j.created)) for j in jobs],
    )
    print(f"{count} job(s)")
    return 0


async def cmd_jobs_show(services: Services, args: argparse.Namespace) -> int:
    try:
        job = await services.jobs.get(args.id)
    except ServiceError as e:
        raise CommandError(f"no job {args.id}") from e
    print_table(("FIELD", "VALUE"), [
        ("id", job.id), ("name", job.name), ("template", job.job_template_id),
        ("status", job.status), ("launch type", job.launch_type), ("limit", job.limit),
        ("resolved by", job.resolved_by), ("extra vars", json.dumps(job.extra_vars or {})),
        ("created", moment(job.created)), ("started", moment(job.started)), ("finished", moment(job.finished)),
        ("elapsed", f"{job.elapsed:.1f}s"), ("explanation", job.job_explanation),
    ])
    if job.result_stdout:
        print()
        print(job.result_stdout.rstrip("\n"))
    return 0


async def cmd_attempts(services: Services, args: argparse.Namespace) -> int:
    count, attempts = await services.attempts.page(args.template, page_size=args.limit)
    print_table(
        ("ID", "TIME", "TEMPLATE", "PEER", "CLIENT", "STATUS", "HOST", "JOB", "MESSAGE"),
        [(a.id, moment(a.created), a.job_template_id, a.peer_address,
          ",".join(a.client_addresses), a.status_code, a.host_name, a.job_id, a.msg)
         for a in attempts],
    )
    print(f"{count} attempt(s)")
    return 0


def cmd_plugins_list(settings: Settings, args: argparse.Namespace) -> int:
    """Needs no database: what runs is decided by the installed plugins and plugins.toml."""
    found = discover_resolvers(make_plugin_manager(), settings)
    print_table(
        ("RESOLVER", "PRIORITY", "ENABLED", "SOURCE"),
        [(r.name, r.priority, "yes" if enabled else "no", r.source) for r, enabled in found],
    )
    return 0


async def cmd_explain(services: Services, args: argparse.Namespace) -> int:
    template = await services.admin.named("job_templates", LOCAL_ADMIN, args.template)
    request = simulated_request(args.address, args.address, args.header)
    # The command line is the server's administrator: the same explanation as
    # an admin's GET, without HTTP credentials.
    explanation = await services.callbacks.explain(str(template["id"]), LOCAL_ADMIN, request)
    remote = explanation["remote"]
    print(f"template:  {template['name']} (id {template['id']})")
    print(f"peer:      {remote['peer']}")
    print(f"client:    {', '.join(remote['addresses']) or '(unknown)'}")
    print(f"names:     {', '.join(remote['names']) or '-'}")
    print(f"matching:  {', '.join(explanation['matching_hosts']) or '(none)'}")
    print()
    print_table(
        ("RESOLVER", "PRIORITY", "OUTCOME", "HOSTS", "MS", "EVIDENCE"),
        [(e["resolver"], e["priority"], e["outcome"], ",".join(e["hosts"]), e["elapsed_ms"],
          "; ".join(e["evidence"])) for e in explanation["resolution"]],
    )
    return 0


async def cmd_identity_reset(services: Services, args: argparse.Namespace) -> int:
    try:
        await services.identities.reset(LOCAL_ADMIN, args.provider, args.instance_id)
    except NotFound:
        raise CommandError(f"{args.provider} instance {args.instance_id} is bound to no nonce") from None
    print(f"{args.provider} instance {args.instance_id}: binding reset; its next verified callback binds it again")
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


def add_settings_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database-url", help="default: sqlite in the working directory "
                        "(env TORNADO_CALLBACK_DATABASE_URL)")
    parser.add_argument("--plugins", help="plugins.toml to read (default: ./plugins.toml if present)")


def add_sync_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--overwrite", action="store_true",
                        help="remove hosts and groups this source no longer lists")
    parser.add_argument("--overwrite-vars", action="store_true",
                        help="replace variables instead of merging them")


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tornado-callback", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(parent: Any, name: str, func: Command | None, help_text: str) -> argparse.ArgumentParser:
        sub = parent.add_parser(name, help=help_text, description=help_text)
        add_settings_flags(sub)
        sub.set_defaults(func=func)
        return sub

    p = command(commands, "serve", None, "run the server (creates or upgrades the schema)")
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

    db = commands.add_parser("db", help="database maintenance").add_subparsers(
        dest="db_command", required=True, metavar="ACTION")
    command(db, "upgrade", cmd_db_upgrade, "apply migrations")

    user = commands.add_parser("user", help="user accounts").add_subparsers(
        dest="user_command", required=True, metavar="ACTION")
    p = command(user, "create", cmd_user_create, "create a user")
    p.add_argument("name")
    p.add_argument("--superuser", action="store_true")
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")

    token = commands.add_parser("token", help="personal access tokens").add_subparsers(
        dest="token_command", required=True, metavar="ACTION")
    p = command(token, "create", cmd_token_create, "create a token for a user and print it once")
    p.add_argument("name", help="user name")
    p.add_argument("--description", default="")

    inventory = commands.add_parser("inventory", help="inventories").add_subparsers(
        dest="inventory_command", required=True, metavar="ACTION")
    p = command(inventory, "create", cmd_inventory_create, "create an inventory")
    p.add_argument("name")
    p.add_argument("--description", default="")
    p.add_argument("--register-verified-hosts", action="store_true",
                   help="a callback with a verified cloud identity that matches no host creates it")
    p.add_argument("--registration-group", metavar="GROUP",
                   help="the group registered hosts join (default: registered_by_callback)")
    p = command(inventory, "import", cmd_inventory_import,
                "import hosts and groups into an inventory (created if missing)")
    p.add_argument("name", help="inventory name or id")
    p.add_argument("source", help="any path ansible-inventory -i understands, or - to read "
                   "ansible-inventory --list JSON from stdin")
    add_sync_flags(p)
    p = command(inventory, "sync", cmd_inventory_sync, "sync an inventory source now")
    p.add_argument("source_id", type=object_id)
    source = inventory.add_parser("source", help="inventory sources").add_subparsers(
        dest="source_command", required=True, metavar="ACTION")
    p = command(source, "add", cmd_inventory_source_add, "add a source to an inventory")
    p.add_argument("inventory", help="inventory name or id")
    p.add_argument("name")
    p.add_argument("--source", choices=SOURCE_KINDS, default="file",
                   help="file: anything ansible-inventory -i reads; script: an executable printing its JSON")
    p.add_argument("--path", required=True)
    p.add_argument("--update-on-launch", action="store_true",
                   help="sync when a callback matches no single host")
    p.add_argument("--cache-timeout", type=int, default=0, metavar="SECONDS",
                   help="a sync this recent is not repeated on launch")
    p.add_argument("--timeout", type=int, default=0, metavar="SECONDS",
                   help="kill the sync after this long (0: the server's default)")
    add_sync_flags(p)

    host = commands.add_parser("host", help="hosts").add_subparsers(
        dest="host_command", required=True, metavar="ACTION")
    p = command(host, "add", cmd_host_add, "add (or update) a host of an inventory")
    p.add_argument("inventory", help="inventory name or id")
    p.add_argument("name")
    p.add_argument("--var", action="append", default=[], metavar="KEY=VALUE",
                   help="host variable; VALUE is JSON if it parses as JSON, else a string")

    template = commands.add_parser("template", help="job templates").add_subparsers(
        dest="template_command", required=True, metavar="ACTION")
    p = command(template, "create", cmd_template_create, "create a job template; prints its callback URL")
    p.add_argument("name")
    p.add_argument("--inventory", required=True, help="inventory name or id")
    p.add_argument("--playbook", required=True)
    p.add_argument("--project-dir")
    p.add_argument("--host-config-key", help="default: a random key")
    p.add_argument("--ask-variables-on-launch", action="store_true")

    jobs = commands.add_parser("jobs", help="jobs").add_subparsers(
        dest="jobs_command", required=True, metavar="ACTION")
    p = command(jobs, "list", cmd_jobs_list, "list the newest jobs")
    p.add_argument("--limit", type=int, default=50)

    p = command(commands, "explain", cmd_explain,
                "show which host a callback would match, and why (the resolution trace)")
    p.add_argument("template", help="job template id or name")
    p.add_argument("--address", required=True, help="evaluate as if the callback came from this IP")
    p.add_argument("--header", action="append", default=[], metavar="'NAME: VALUE'",
                   help="a request header, e.g. 'X-Forwarded-For: 10.0.0.5' (repeatable)")

    identity = commands.add_parser("identity", help="signed cloud identities").add_subparsers(
        dest="identity_command", required=True, metavar="ACTION")
    p = command(identity, "reset", cmd_identity_reset,
                "forget the client nonce an instance is bound to (after it was rebuilt)")
    p.add_argument("provider", choices=PROVIDERS)
    p.add_argument("instance_id")

    plugins = commands.add_parser("plugins", help="resolver plugins").add_subparsers(
        dest="plugins_command", required=True, metavar="ACTION")
    command(plugins, "list", None, "resolvers in run order: name, priority, enabled, source")
    p = command(jobs, "show", cmd_jobs_show, "show one job and its output")
    p.add_argument("id", type=object_id)

    p = command(commands, "worker", None, "run job workers only (no HTTP server), until SIGTERM")
    p.add_argument("--workers", type=int, help="jobs run at once (default 2; env TORNADO_CALLBACK_WORKERS)")

    p = command(commands, "attempts", cmd_attempts, "list the newest callback attempts (audit trail)")
    p.add_argument("--template", type=object_id)
    p.add_argument("--limit", type=int, default=50)
    return parser


async def run_command(func: Command, settings: Settings, args: argparse.Namespace) -> int:
    services = await Services.start(settings)
    try:
        return await func(services, args)
    finally:
        await services.close()


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # Every request is logged (tornado.access). What LOG_FORMAT does not show
    # need not be collected for each record: the caller's frame, the thread and
    # process names (the logging HOWTO, "Optimization").
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


def run(args: argparse.Namespace) -> int:
    flags = {k: getattr(args, k, None) for k in (
        "database_url", "plugins", "host", "port", "processes", "certfile", "keyfile", "workers")}
    if getattr(args, "no_worker", False):
        flags["workers"] = 0
    settings = build_settings(**flags)
    if args.command == "serve":
        return run_serve(settings, args)
    if args.command == "plugins":
        return cmd_plugins_list(settings, args)
    if args.command == "worker":
        asyncio.run(run_workers(settings))
        return 0
    return asyncio.run(run_command(args.func, settings, args))


def main(argv: Sequence[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    configure_logging()
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
