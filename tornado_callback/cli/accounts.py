"""``user`` and ``token``: accounts, written through the admin API's service where the API writes them."""

from __future__ import annotations

import argparse
import getpass
import sys

from tornado_callback.accounts.service import LOCAL_ADMIN
from tornado_callback.admin.service import ListQuery
from tornado_callback.cli.common import CommandError, Subcommands, command, every, group, read_command
from tornado_callback.cli.output import moment, print_listing
from tornado_callback.services import Services


def read_password(args: argparse.Namespace, empty_means: str = "") -> str:
    """The password of user ``args.name``: a line of stdin with ``--password-stdin``, else asked
    on the terminal; ``empty_means`` says what an empty one does."""
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if sys.stdin.isatty():
        return getpass.getpass(f"Password for {args.name}: ")
    # Without a terminal to ask on, the password would be empty, unsaid.
    raise CommandError(f"no terminal to ask for the password: give it on stdin with --password-stdin{empty_means}")


async def cmd_user_create(services: Services, args: argparse.Namespace) -> int:
    password = read_password(args, " (an empty line makes a user who signs in with tokens only)")
    user = await services.accounts.create_user(args.name, password or None, superuser=args.superuser)
    print(f"created user {user.username} (id {user.id}{', superuser' if user.is_superuser else ''})"
          f"{'' if password else ' without a password: it signs in with tokens only'}")
    return 0


async def cmd_user_list(services: Services, args: argparse.Namespace) -> int:
    print_listing(args, await every(services, "users"), ("ID", "USERNAME", "SUPERUSER", "EMAIL", "CREATED"),
                  lambda u: (u["id"], u["username"], u["is_superuser"], u["email"], moment(u["created"])))
    return 0


async def cmd_user_set_password(services: Services, args: argparse.Namespace) -> int:
    found = await services.admin.list("users", LOCAL_ADMIN, ListQuery(filters={"username": args.name}))
    if not found.results:
        raise CommandError(f"no user {args.name!r}")
    user = found.results[0]
    # As PATCH /api/v2/users/ID/ does it: the same checks, the cached logins forgotten.
    await services.admin.update("users", LOCAL_ADMIN, user["id"], {"password": read_password(args)}, partial=True)
    print(f"password of user {user['username']} (id {user['id']}) changed")
    return 0


async def cmd_token_create(services: Services, args: argparse.Namespace) -> int:
    token = await services.accounts.create_token(args.name, args.description)
    print(token)
    print(f"Token for {args.name}; it is shown only now.", file=sys.stderr)
    return 0


def add_commands(commands: Subcommands) -> None:
    user = group(commands, "user", "user accounts")
    p = command(user, "create", cmd_user_create, "create a user")
    p.add_argument("name")
    p.add_argument("--superuser", action="store_true")
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    read_command(user, "list", cmd_user_list, "list the users")
    p = command(user, "set-password", cmd_user_set_password, "set a user's password")
    p.add_argument("name")
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")

    token = group(commands, "token", "personal access tokens")
    p = command(token, "create", cmd_token_create, "create a token for a user and print it once")
    p.add_argument("name", help="user name")
    p.add_argument("--description", default="")
