"""``jobs``: the jobs callbacks and launches made, and their output."""

from __future__ import annotations

import argparse

from tornado_callback.accounts.service import LOCAL_ADMIN
from tornado_callback.cli.common import CommandError, Subcommands, command, group, limit, object_id, read_command
from tornado_callback.cli.output import add_json_flag, moment, print_fields, print_json, print_table, print_text
from tornado_callback.errors import ServiceError
from tornado_callback.jobs.service import job_summary
from tornado_callback.services import Services


async def cmd_jobs_list(services: Services, args: argparse.Namespace) -> int:
    count, jobs = await services.jobs.page(LOCAL_ADMIN, page_size=args.limit)
    summaries = [job_summary(j) for j in jobs]
    if args.json:
        print_json(summaries)
        return 0
    print_table(
        ("ID", "TEMPLATE", "STATUS", "LAUNCH", "LIMIT", "RESOLVED BY", "CREATED"),
        [(j["id"], j["job_template"], j["status"], j["launch_type"], j["limit"], j["resolved_by"],
          moment(j["created"])) for j in summaries],
    )
    print(f"{count} job(s)")
    return 0


async def cmd_jobs_show(services: Services, args: argparse.Namespace) -> int:
    try:
        job = await services.jobs.get(args.id)
    except ServiceError as e:
        raise CommandError(f"no job {args.id}") from e
    if args.json:
        print_json(job_summary(job))
        return 0
    print_fields(job_summary(job))
    if job.result_stdout:
        print()
        print_text(job.result_stdout.rstrip("\n"))
    return 0


def add_commands(commands: Subcommands) -> None:
    jobs = group(commands, "jobs", "jobs")
    p = read_command(jobs, "list", cmd_jobs_list, "list the newest jobs")
    p.add_argument("--limit", type=limit, default=50)
    p = command(jobs, "show", cmd_jobs_show, "show one job and its output")
    p.add_argument("id", type=object_id)
    add_json_flag(p)
