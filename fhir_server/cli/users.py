"""`fhir-server users add|list|show|remove|set-role|set-password|unlock|disable|enable`: the people who
sign in, straight in the database (docs/accounts.md).

Passwords are read from a prompt or, for scripts, one line on standard input (`--password-stdin`), never
from the command line (argv is visible to every local user through `ps`). The rules are auth/accounts.py's.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from datetime import UTC, datetime
from typing import Any

from fhir_server.auth import accounts, roles
from fhir_server.cli.common import fail, print_json, print_record, print_table, run_with_store
from fhir_server.db.auth_store import AuthStore

PROG = "fhir-server users"


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("users", help="manage the people who sign in",
                                 description="Manage the people who sign in (docs/accounts.md)")
    actions = parser.add_subparsers(dest="action", required=True)
    role_help = f"one of: {', '.join(roles.ROLES)}"

    add = actions.add_parser("add", help="create a user")
    add.add_argument("username")
    add.add_argument("--role", required=True, help=role_help)
    add.add_argument("--fhir-user", help="the user's FHIR resource, e.g. Practitioner/123 (staff)")
    add.add_argument("--patient", help="the linked Patient id (required for role patient)")
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    add.add_argument("--disabled", action="store_true", help="create the account inactive")
    add.add_argument("--json", action="store_true", help="print JSON")
    add.set_defaults(run=_add)

    listing = actions.add_parser("list", help="list users")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(run=_list)

    show = actions.add_parser("show", help="show one user")
    show.add_argument("username")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(run=_show)

    set_role = actions.add_parser("set-role", help="change a user's role (takes effect on their next request)")
    set_role.add_argument("username")
    set_role.add_argument("role", help=role_help)
    set_role.add_argument("--patient", help="the linked Patient id (when the new role is patient)")
    set_role.add_argument("--fhir-user", help="the user's FHIR resource under the new role")
    set_role.set_defaults(run=_set_role)

    set_password = actions.add_parser("set-password", help="set a new password (clears a lockout, revokes "
                                                            "the user's tokens)")
    set_password.add_argument("username")
    set_password.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    set_password.set_defaults(run=_set_password)

    for name, help_text, run in (("remove", "revoke the user's tokens and delete the account", _remove),
                                 ("unlock", "clear a lockout after failed sign-ins", _unlock),
                                 ("disable", "deactivate the account and revoke its tokens", _disable),
                                 ("enable", "reactivate the account", _enable)):
        action = actions.add_parser(name, help=help_text)
        action.add_argument("username")
        action.set_defaults(run=run)


class PasswordUnavailable(Exception):
    pass


def read_password(from_stdin: bool) -> str:
    """One line of standard input, or a twice-typed prompt on the terminal."""
    if from_stdin:
        line = sys.stdin.readline()
        return line.removesuffix("\n").removesuffix("\r")
    if not sys.stdin.isatty():
        raise PasswordUnavailable("no terminal to prompt for the password on; pipe it with --password-stdin")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Repeat password: ") != first:
        raise PasswordUnavailable("the two passwords differ")
    return first


def _password(args: argparse.Namespace) -> str | None:
    """The password, already checked for length (before any database work), or None after printing why."""
    try:
        return accounts.check_password(read_password(args.password_stdin))
    except (PasswordUnavailable, EOFError, KeyboardInterrupt) as exc:
        fail(PROG, str(exc) or "no password given")
    except accounts.AccountError as exc:
        fail(PROG, exc.message)
    return None


def _view(user: Any) -> dict[str, Any]:
    return accounts.user_view(user, datetime.now(UTC))


def _add(args: argparse.Namespace) -> int:
    fields: dict[str, Any] = {"username": args.username, "role": args.role, "active": not args.disabled}
    if args.fhir_user:
        fields["fhir_user"] = args.fhir_user
    if args.patient:
        fields["patient"] = args.patient
    try:  # refuse a bad role or link before asking for a password
        accounts.check_username(args.username)
        accounts.check_role(args.role)
    except accounts.AccountError as exc:
        return fail(PROG, exc.message)
    password = _password(args)
    if password is None:
        return 1
    fields["password"] = password

    async def action(store: AuthStore) -> int:
        user = await accounts.create_user(store, fields)
        if args.json:
            print_json(_view(user))
        else:
            link = f", {user.fhir_user}" if user.fhir_user else ""
            print(f"created user {user.username} (role {user.role}{link})")
        return 0

    return run_with_store(PROG, action)


def _list(args: argparse.Namespace) -> int:
    async def action(store: AuthStore) -> int:
        users = [_view(u) for u in await store.list_users()]
        if args.json:
            print_json(users)
        else:
            print_table(users, [("username", "USERNAME"), ("role", "ROLE"), ("active", "ACTIVE"),
                                ("locked", "LOCKED"), ("fhir_user", "FHIR_USER")])
        return 0

    return run_with_store(PROG, action)


def _show(args: argparse.Namespace) -> int:
    async def action(store: AuthStore) -> int:
        user = await accounts.get_user(store, args.username)
        if args.json:
            print_json(_view(user))
        else:
            print_record(_view(user))
        return 0

    return run_with_store(PROG, action)


def _set_role(args: argparse.Namespace) -> int:
    changes: dict[str, Any] = {"role": args.role}
    if args.patient:
        changes["patient"] = args.patient
    if args.fhir_user:
        changes["fhir_user"] = args.fhir_user

    async def action(store: AuthStore) -> int:
        user = await accounts.update_user(store, args.username, changes)
        print(f"user {user.username} now has role {user.role}")
        return 0

    return run_with_store(PROG, action)


def _set_password(args: argparse.Namespace) -> int:
    password = _password(args)
    if password is None:
        return 1

    async def action(store: AuthStore) -> int:
        await accounts.update_user(store, args.username, {"password": password})
        print(f"password of {args.username} changed (lockout cleared, tokens revoked)")
        return 0

    return run_with_store(PROG, action)


def _remove(args: argparse.Namespace) -> int:
    async def action(store: AuthStore) -> int:
        revoked = await accounts.remove_user(store, args.username)
        print(f"removed user {args.username} ({revoked} token(s) revoked)")
        return 0

    return run_with_store(PROG, action)


def _unlock(args: argparse.Namespace) -> int:
    async def action(store: AuthStore) -> int:
        await accounts.unlock_user(store, args.username)
        print(f"user {args.username} unlocked")
        return 0

    return run_with_store(PROG, action)


def _set_active(args: argparse.Namespace, active: bool) -> int:
    async def action(store: AuthStore) -> int:
        await accounts.update_user(store, args.username, {"active": active})
        print(f"user {args.username} {'enabled' if active else 'disabled (their tokens are revoked)'}")
        return 0

    return run_with_store(PROG, action)


def _disable(args: argparse.Namespace) -> int:
    return _set_active(args, False)


def _enable(args: argparse.Namespace) -> int:
    return _set_active(args, True)
