"""``template`` and ``explain``: job templates, their callback keys, and which host a callback would match."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from tornado_callback.accounts.service import LOCAL_ADMIN
from tornado_callback.admin.catalog import new_host_config_key
from tornado_callback.callback.service import simulated_request
from tornado_callback.cli.common import Subcommands, callback_url, command, every, group, read_command
from tornado_callback.cli.output import moment, print_fields, print_json, print_listing, print_table
from tornado_callback.jobs.playbook_run import RunSetupError, playbook_path
from tornado_callback.services import Services


def print_callback(services: Services, template: dict[str, Any]) -> None:
    """What a host needs to call back: the key (the command line is the server's administrator,
    who may read it) and the URL."""
    print(f"host_config_key: {template['host_config_key']}")
    print(f"callback URL:    {callback_url(services.settings, template['id'])}")


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
    print_callback(services, template)
    try:
        playbook_path(template["project_dir"], template["playbook"])
    except RunSetupError as e:  # the project may be deployed later: a warning, not a refusal
        print(f"tornado-callback: warning: {str(e).rstrip('.')}; the template's jobs fail until that is fixed",
              file=sys.stderr)
    return 0


async def cmd_template_list(services: Services, args: argparse.Namespace) -> int:
    inventories = {i["id"]: i["name"] for i in await every(services, "inventories")}
    # No key in the table: a listing is read over shoulders and pasted into tickets.
    print_listing(args, await every(services, "job_templates"),
                  ("ID", "NAME", "INVENTORY", "PLAYBOOK", "CALLBACKS", "MODIFIED"),
                  lambda t: (t["id"], t["name"], inventories.get(t["inventory"], t["inventory"]), t["playbook"],
                             "on" if t["host_config_key"] else "off", moment(t["modified"])))
    return 0


async def cmd_template_show(services: Services, args: argparse.Namespace) -> int:
    template = await services.admin.named("job_templates", LOCAL_ADMIN, args.template)
    if args.json:
        print_json(template)
        return 0
    url = callback_url(services.settings, template["id"]) if template["host_config_key"] else "(callbacks off: no key)"
    print_fields(template, [("callback URL", url)])
    return 0


async def cmd_template_set_key(services: Services, args: argparse.Namespace) -> int:
    template = await services.admin.named("job_templates", LOCAL_ADMIN, args.template)
    key = new_host_config_key() if args.key is None else args.key
    # As PATCH /api/v2/job_templates/ID/ does it, with its checks (a key needs an inventory).
    template = await services.admin.update("job_templates", LOCAL_ADMIN, template["id"],
                                           {"host_config_key": key}, partial=True)
    if not key:
        print(f"job template {template['name']} (id {template['id']}): key removed; its callbacks are refused")
        return 0
    print(f"job template {template['name']} (id {template['id']}): new key; the old one is refused from now on")
    print_callback(services, template)
    return 0


async def cmd_explain(services: Services, args: argparse.Namespace) -> int:
    template = await services.admin.named("job_templates", LOCAL_ADMIN, args.template)
    request = simulated_request(args.address, args.address, args.header)
    # The command line is the server's administrator: the same explanation as
    # an admin's GET, without HTTP credentials.
    explanation = await services.callbacks.explain(str(template["id"]), LOCAL_ADMIN, request)
    if args.json:
        print_json(explanation)
        return 0
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


def add_commands(commands: Subcommands) -> None:
    template = group(commands, "template", "job templates")
    p = command(template, "create", cmd_template_create, "create a job template; prints its callback URL")
    p.add_argument("name")
    p.add_argument("--inventory", required=True, help="inventory name or id")
    p.add_argument("--playbook", required=True)
    p.add_argument("--project-dir")
    p.add_argument("--host-config-key", help="default: a random key")
    p.add_argument("--ask-variables-on-launch", action="store_true")
    read_command(template, "list", cmd_template_list, "list the job templates")
    read_command(template, "show", cmd_template_show, "show a job template, its key and its callback URL",
                 ("template", "job template name or id"))
    p = command(template, "set-key", cmd_template_set_key,
                "give a job template a new host_config_key (the old one is refused) and print it")
    p.add_argument("template", help="job template name or id")
    p.add_argument("--key", help="the new key (default: a random one; empty: no key, callbacks refused)")

    p = read_command(commands, "explain", cmd_explain,
                     "show which host a callback would match, and why (the resolution trace)",
                     ("template", "job template id or name"))
    p.add_argument("--address", required=True, help="evaluate as if the callback came from this IP")
    p.add_argument("--header", action="append", default=[], metavar="'NAME: VALUE'",
                   help="a request header, e.g. 'X-Forwarded-For: 10.0.0.5' (repeatable)")
