"""`fhir-server clients add|list|show|remove|disable|enable|rotate-secret`: register the apps that may ask
for SMART tokens, straight in the database (docs/accounts.md).

The rules (scopes, redirect URIs, keys) are auth/accounts.py's, shared with the admin API. A confidential
client's secret is printed once, by `add` or `rotate-secret`, and never again: only its hash is stored.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import orjson

from fhir_server.auth import accounts
from fhir_server.cli.common import fail, print_json, print_record, print_table, run_with_store
from fhir_server.db.auth_store import AuthStore, Client

PROG = "fhir-server clients"
MAX_JWKS_FILE = 64 * 1024


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("clients", help="register and manage SMART client apps",
                                 description="Register and manage SMART client apps (docs/accounts.md)")
    actions = parser.add_subparsers(dest="action", required=True)

    add = actions.add_parser("add", help="register a client")
    add.add_argument("--kind", required=True, choices=accounts.CLIENT_KINDS,
                     help="public (browser/native app, PKCE only), confidential (gets a secret), "
                          "backend (private_key_jwt: client_credentials, and the code flow if it has redirect "
                          "URIs; needs --jwks or --jwks-uri)")
    add.add_argument("--name", required=True, help="a name people recognise (shown on the consent page)")
    add.add_argument("--scope", required=True,
                     help='the widest scopes the client may be granted, e.g. "launch/patient openid fhirUser '
                          'patient/*.rs" (backend: "system/*.rs")')
    add.add_argument("--id", dest="client_id", help="the client_id (default: generated)")
    add.add_argument("--redirect-uri", dest="redirect_uris", action="append", default=[], metavar="URI",
                     help="an exact redirect URI (repeat for several); required for public and confidential, "
                          "optional for backend (enables the code flow)")
    add.add_argument("--origin", dest="allowed_origins", action="append", default=[], metavar="ORIGIN",
                     help="a browser origin allowed to call the token endpoint (CORS), e.g. https://app.example.org")
    add.add_argument("--launch-uri", help="the app's launch URL (EHR launch)")
    add.add_argument("--jwks", type=Path, metavar="FILE", help="a JSON file with the client's public JWKS")
    add.add_argument("--jwks-uri", metavar="URL", help="where the client publishes its public JWKS")
    add.add_argument("--json", action="store_true", help="print JSON")
    add.set_defaults(run=_add)

    listing = actions.add_parser("list", help="list clients")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(run=_list)

    for name, help_text, run in (("show", "show one client", _show), ("remove", "revoke tokens and delete", _remove),
                                 ("disable", "deactivate and revoke its tokens", _disable),
                                 ("enable", "reactivate", _enable),
                                 ("rotate-secret", ("issue a new secret to a confidential client (printed once; "
                                                    "revokes its tokens)"), _rotate)):
        action = actions.add_parser(name, help=help_text)
        action.add_argument("client_id", metavar="CLIENT_ID")
        if name in ("show", "rotate-secret"):
            action.add_argument("--json", action="store_true", help="print JSON")
        action.set_defaults(run=run)


def _read_jwks(path: Path) -> Any:
    try:
        if path.stat().st_size > MAX_JWKS_FILE:
            raise accounts.AccountError(f"{path}: over {MAX_JWKS_FILE} bytes; a JWKS is a few kilobytes", "jwks")
        return orjson.loads(path.read_bytes())
    except OSError as exc:
        raise accounts.AccountError(f"{path}: cannot read it ({exc.strerror})", "jwks") from None
    except orjson.JSONDecodeError as exc:
        raise accounts.AccountError(f"{path}: not JSON ({exc})", "jwks") from None


def _summary(client: Client) -> dict[str, Any]:
    """The API's view with the key set shortened to its key ids (full JSON with --json)."""
    view = accounts.client_view(client)
    if client.jwks:
        view["jwks"] = [f"{k.get('kid')} ({k.get('alg')})" for k in client.jwks.get("keys", [])]
    return view


def _print_secret(secret: str) -> None:
    print(f"client secret: {secret}")
    print("  (shown only this once: store it now; only its hash is kept. `clients rotate-secret` issues a new one)")


def _add(args: argparse.Namespace) -> int:
    fields: dict[str, Any] = {"kind": args.kind, "name": args.name, "scope": args.scope,
                              "redirect_uris": args.redirect_uris, "allowed_origins": args.allowed_origins}
    for key in ("client_id", "launch_uri", "jwks_uri"):
        if getattr(args, key):
            fields[key] = getattr(args, key)
    try:
        if args.jwks:
            fields["jwks"] = _read_jwks(args.jwks)
    except accounts.AccountError as exc:
        return fail(PROG, exc.message)

    async def action(store: AuthStore) -> int:
        client, secret = await accounts.create_client(store, fields)
        if args.json:
            print_json({**accounts.client_view(client), **({"client_secret": secret} if secret else {})})
            return 0
        print(f"registered {client.kind} client {client.name!r}")
        print(f"client_id: {client.client_id}")
        if secret:
            _print_secret(secret)
        return 0

    return run_with_store(PROG, action)


def _list(args: argparse.Namespace) -> int:
    async def action(store: AuthStore) -> int:
        clients = await store.list_clients()
        if args.json:
            print_json([accounts.client_view(c) for c in clients])
        else:
            print_table([accounts.client_view(c) for c in clients],
                        [("client_id", "CLIENT_ID"), ("kind", "KIND"), ("active", "ACTIVE"), ("name", "NAME"),
                         ("scope", "SCOPE")])
        return 0

    return run_with_store(PROG, action)


def _show(args: argparse.Namespace) -> int:
    async def action(store: AuthStore) -> int:
        client = await accounts.get_client(store, args.client_id)
        if args.json:
            print_json(accounts.client_view(client))
        else:
            print_record(_summary(client))
        return 0

    return run_with_store(PROG, action)


def _remove(args: argparse.Namespace) -> int:
    async def action(store: AuthStore) -> int:
        revoked = await accounts.remove_client(store, args.client_id)
        print(f"removed client {args.client_id} ({revoked} token(s) revoked)")
        return 0

    return run_with_store(PROG, action)


def _set_active(args: argparse.Namespace, active: bool) -> int:
    async def action(store: AuthStore) -> int:
        await accounts.set_client_active(store, args.client_id, active)
        print(f"client {args.client_id} {'enabled' if active else 'disabled (its tokens are revoked)'}")
        return 0

    return run_with_store(PROG, action)


def _disable(args: argparse.Namespace) -> int:
    return _set_active(args, False)


def _enable(args: argparse.Namespace) -> int:
    return _set_active(args, True)


def _rotate(args: argparse.Namespace) -> int:
    async def action(store: AuthStore) -> int:
        client, secret = await accounts.update_client(store, args.client_id, {"rotate_secret": True})
        assert secret is not None
        if args.json:
            print_json({**accounts.client_view(client), "client_secret": secret})
        else:
            print(f"new secret for client {client.client_id} (its old tokens are revoked)")
            _print_secret(secret)
        return 0

    return run_with_store(PROG, action)
