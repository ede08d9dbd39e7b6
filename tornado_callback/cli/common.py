"""What every command module shares: how a command is declared, its argument types, the admin listings."""

from __future__ import annotations

import argparse
import itertools
import json
from collections.abc import Awaitable, Callable
from typing import Any

from tornado_callback.accounts.service import LOCAL_ADMIN
from tornado_callback.admin.catalog import SUB_LISTS
from tornado_callback.admin.resource import SubList
from tornado_callback.admin.service import ListQuery, Page
from tornado_callback.cli.output import add_json_flag
from tornado_callback.config import Settings
from tornado_callback.http.values import INT_MAX, MAX_PAGE_SIZE, bounded_int, parse_id
from tornado_callback.services import Services, base_url

Command = Callable[[Services, argparse.Namespace], Awaitable[int]]
# A command that needs no database (serve and worker open their own; plugins list reads no rows).
SettingsCommand = Callable[[Settings, argparse.Namespace], int]
Subcommands = Any  # argparse's _SubParsersAction, which it does not export


class CommandError(Exception):
    """A command that cannot do what was asked; printed without a traceback."""


def add_settings_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database-url", help="default: sqlite in the working directory "
                        "(env TORNADO_CALLBACK_DATABASE_URL)")
    parser.add_argument("--plugins", help="plugins.toml to read (default: ./plugins.toml if present)")


def group(commands: Subcommands, name: str, help_text: str) -> Subcommands:
    """A command group (``template``), whose actions (``template list``) are added to what it returns."""
    return commands.add_parser(name, help=help_text).add_subparsers(
        dest=f"{name}_command", required=True, metavar="ACTION")


def _subcommand(parent: Subcommands, name: str, help_text: str, **defaults: Any) -> argparse.ArgumentParser:
    sub = parent.add_parser(name, help=help_text, description=help_text)
    add_settings_flags(sub)
    sub.set_defaults(**defaults)
    return sub


def command(parent: Subcommands, name: str, func: Command, help_text: str) -> argparse.ArgumentParser:
    """A command run with the services on the database of the settings."""
    return _subcommand(parent, name, help_text, func=func, settings_func=None)


def read_command(parent: Subcommands, name: str, func: Command, help_text: str,
                 *positionals: tuple[str, str]) -> argparse.ArgumentParser:
    """A command that reads: its positional arguments as (name, help), and ``--json``."""
    sub = command(parent, name, func, help_text)
    for positional, positional_help in positionals:
        sub.add_argument(positional, help=positional_help)
    add_json_flag(sub)
    return sub


def settings_command(parent: Subcommands, name: str, func: SettingsCommand, help_text: str) -> argparse.ArgumentParser:
    """A command that is handed the settings only."""
    return _subcommand(parent, name, help_text, func=None, settings_func=func)


def callback_url(settings: Settings, template_id: int) -> str:
    return f"{base_url(settings)}/api/v2/job_templates/{template_id}/callback/"


def object_id(text: str) -> int:
    """An id argument, bounded as the API bounds ids (argparse turns the error into one line)."""
    value = parse_id(text)
    if value is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not an id (1 to {INT_MAX})")
    return value


def limit(text: str) -> int:
    """A ``--limit``: how many of the newest to list."""
    value = bounded_int(text, 1, INT_MAX)
    if value is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number from 1 to {INT_MAX}")
    return value


def parse_var(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise CommandError(f"--var {text!r}: expected KEY=VALUE")
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return key, value


async def every_object(listing: Callable[[ListQuery], Awaitable[Page]], **query: Any) -> list[dict[str, Any]]:
    """All the objects of a listing of the admin service, a REST API page at a time."""
    objects: list[dict[str, Any]] = []
    for number in itertools.count(1):
        page = await listing(ListQuery(page=number, page_size=MAX_PAGE_SIZE, **query))
        objects += page.results
        if len(objects) >= page.count or not page.results:
            break
    return objects


async def every(services: Services, name: str) -> list[dict[str, Any]]:
    """Every object of the resource ``name`` (/api/v2/NAME/), as the server's administrator reads them."""
    return await every_object(lambda query: services.admin.list(name, LOCAL_ADMIN, query))


def sub_list(parent: str, segment: str) -> SubList:
    """What ``/api/v2/PARENT/{id}/SEGMENT/`` lists, so that a command lists the same."""
    return next(s for s in SUB_LISTS if (s.parent, s.segment) == (parent, segment))
