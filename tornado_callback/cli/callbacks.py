"""``attempts``, ``identity`` and ``plugins``: the callbacks' audit trail, their signed identities,
and the resolvers that match them."""

from __future__ import annotations

import argparse

from tornado_callback.accounts.service import LOCAL_ADMIN
from tornado_callback.admin.service import ListQuery
from tornado_callback.cli.common import (
    CommandError,
    Subcommands,
    command,
    group,
    limit,
    read_command,
    settings_command,
    sub_list,
)
from tornado_callback.cli.output import add_json_flag, moment, print_json, print_table
from tornado_callback.config import Settings
from tornado_callback.errors import NotFound
from tornado_callback.identity.service import PROVIDERS
from tornado_callback.plugin.manager import discover_resolvers, make_plugin_manager
from tornado_callback.services import Services


async def cmd_attempts(services: Services, args: argparse.Namespace) -> int:
    query = ListQuery(page_size=args.limit)
    if args.template is None:
        page = await services.admin.list("callback_attempts", LOCAL_ADMIN, query)
    else:
        template = await services.admin.named("job_templates", LOCAL_ADMIN, args.template)
        audit_trail = sub_list("job_templates", "callback_attempts")
        page = await services.admin.sub_list(audit_trail, LOCAL_ADMIN, template["id"], query)
    if args.json:
        print_json(page.results)
        return 0
    print_table(
        ("ID", "TIME", "TEMPLATE", "PEER", "CLIENT", "STATUS", "HOST", "JOB", "MESSAGE"),
        [(a["id"], moment(a["created"]), a["job_template"], a["peer_address"], ",".join(a["client_addresses"]),
          a["status_code"], a["host_name"], a["job"], a["msg"]) for a in page.results],
    )
    print(f"{page.count} attempt(s)")
    return 0


async def cmd_identity_reset(services: Services, args: argparse.Namespace) -> int:
    try:
        await services.identities.reset(LOCAL_ADMIN, args.provider, args.instance_id)
    except NotFound:
        raise CommandError(f"{args.provider} instance {args.instance_id} is bound to no nonce") from None
    print(f"{args.provider} instance {args.instance_id}: binding reset; its next verified callback binds it again")
    return 0


def cmd_plugins_list(settings: Settings, args: argparse.Namespace) -> int:
    """Needs no database: what runs is decided by the installed plugins and plugins.toml."""
    found = discover_resolvers(make_plugin_manager(), settings)
    if args.json:
        print_json([{"name": r.name, "priority": r.priority, "enabled": enabled, "source": r.source}
                    for r, enabled in found])
        return 0
    print_table(("RESOLVER", "PRIORITY", "ENABLED", "SOURCE"),
                [(r.name, r.priority, enabled, r.source) for r, enabled in found])
    return 0


def add_commands(commands: Subcommands) -> None:
    p = read_command(commands, "attempts", cmd_attempts, "list the newest callback attempts (audit trail)")
    p.add_argument("--template", help="job template name or id")
    p.add_argument("--limit", type=limit, default=50)

    identity = group(commands, "identity", "signed cloud identities")
    p = command(identity, "reset", cmd_identity_reset,
                "forget the client nonce an instance is bound to (after it was rebuilt)")
    p.add_argument("provider", choices=PROVIDERS)
    p.add_argument("instance_id")

    plugins = group(commands, "plugins", "resolver plugins")
    add_json_flag(settings_command(plugins, "list", cmd_plugins_list,
                                   "resolvers in run order: name, priority, enabled, source"))
