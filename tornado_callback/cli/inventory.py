"""``inventory`` and ``host``: inventories, their sources and hosts, through the admin API's service."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tornado_callback.accounts.service import LOCAL_ADMIN
from tornado_callback.admin.service import ListQuery
from tornado_callback.cli.common import (
    Subcommands,
    command,
    every,
    every_object,
    group,
    object_id,
    parse_var,
    read_command,
    sub_list,
)
from tornado_callback.cli.output import moment, print_fields, print_json, print_listing, print_table
from tornado_callback.errors import NotFound
from tornado_callback.inventory.ansible_inventory import SOURCE_KINDS
from tornado_callback.inventory.sync import import_source
from tornado_callback.services import Services

if TYPE_CHECKING:
    from tornado_callback.store.models import InventoryUpdate


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


async def cmd_inventory_list(services: Services, args: argparse.Namespace) -> int:
    print_listing(args, await every(services, "inventories"),
                  ("ID", "NAME", "DESCRIPTION", "REGISTERS HOSTS", "MODIFIED"),
                  lambda i: (i["id"], i["name"], i["description"], i["register_verified_hosts"], moment(i["modified"])))
    return 0


async def inventory_children(services: Services, inventory_id: int, child: str) -> list[dict[str, Any]]:
    listing = sub_list("inventories", child)
    return await every_object(lambda query: services.admin.sub_list(listing, LOCAL_ADMIN, inventory_id, query))


async def cmd_inventory_show(services: Services, args: argparse.Namespace) -> int:
    inventory = await services.admin.named("inventories", LOCAL_ADMIN, args.inventory)
    if args.json:
        print_json(inventory)
        return 0
    hosts = await services.admin.sub_list(sub_list("inventories", "hosts"), LOCAL_ADMIN, inventory["id"],
                                          ListQuery(page_size=1))
    print_fields(inventory, [("hosts", hosts.count)])
    sources = await inventory_children(services, inventory["id"], "inventory_sources")
    if sources:
        print()
        print_table(("SOURCE ID", "NAME", "KIND", "PATH", "UPDATE ON LAUNCH", "LAST SUCCESSFUL UPDATE"),
                    [(s["id"], s["name"], s["source"], s["source_path"], s["update_on_launch"],
                      moment(s["last_successful_update"])) for s in sources])
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


async def cmd_host_list(services: Services, args: argparse.Namespace) -> int:
    inventory = await services.admin.named("inventories", LOCAL_ADMIN, args.inventory)
    print_listing(args, await inventory_children(services, inventory["id"], "hosts"),
                  ("ID", "NAME", "ENABLED", "REGISTERED", "VARIABLES"),
                  lambda h: (h["id"], h["name"], h["enabled"], h["registered_by_callback"], h["variables"]))
    return 0


def add_sync_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--overwrite", action="store_true",
                        help="remove hosts and groups this source no longer lists")
    parser.add_argument("--overwrite-vars", action="store_true",
                        help="replace variables instead of merging them")


def add_commands(commands: Subcommands) -> None:
    inventory = group(commands, "inventory", "inventories")
    p = command(inventory, "create", cmd_inventory_create, "create an inventory")
    p.add_argument("name")
    p.add_argument("--description", default="")
    p.add_argument("--register-verified-hosts", action="store_true",
                   help="a callback with a verified cloud identity that matches no host creates it")
    p.add_argument("--registration-group", metavar="GROUP",
                   help="the group registered hosts join (default: registered_by_callback)")
    read_command(inventory, "list", cmd_inventory_list, "list the inventories")
    read_command(inventory, "show", cmd_inventory_show, "show an inventory, its host count and its sources",
                 ("inventory", "inventory name or id"))
    p = command(inventory, "import", cmd_inventory_import,
                "import hosts and groups into an inventory (created if missing)")
    p.add_argument("name", help="inventory name or id")
    p.add_argument("source", help="any path ansible-inventory -i understands, or - to read "
                   "ansible-inventory --list JSON from stdin")
    add_sync_flags(p)
    p = command(inventory, "sync", cmd_inventory_sync, "sync an inventory source now")
    p.add_argument("source_id", type=object_id)
    source = group(inventory, "source", "inventory sources")
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

    host = group(commands, "host", "hosts")
    p = command(host, "add", cmd_host_add, "add (or update) a host of an inventory")
    p.add_argument("inventory", help="inventory name or id")
    p.add_argument("name")
    p.add_argument("--var", action="append", default=[], metavar="KEY=VALUE",
                   help="host variable; VALUE is JSON if it parses as JSON, else a string")
    read_command(host, "list", cmd_host_list, "list the hosts of an inventory", ("inventory", "inventory name or id"))
