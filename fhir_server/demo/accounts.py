"""Demo sign-in accounts for `make run`: three clients and five users, created once when the auth store is
empty, so a newcomer can get a token at once (docs/accounts.md, "Demo accounts").

Why generated secrets rather than fixed ones: a demo database copied to a shared machine must not open with
a password printed in the README. Passwords, the confidential client's secret and the backend client's
private key are written to files under `FHIR_DATA_DIR` readable only by their owner (0600); the database
keeps only argon2 hashes and the public key. Accounts go through auth/accounts.py, the same rules as the
CLI and admin API.
"""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from joserfc.jwk import ECKey

from fhir_server.auth import accounts
from fhir_server.db.auth_store import AuthStore
from fhir_server.services import Services

log = logging.getLogger("fhir_server.demo")

ACCOUNTS_FILE = "demo-accounts.txt"
KEY_FILE = "demo-backend-key.json"
PUBLIC_CLIENT = "demo-app"
CONFIDENTIAL_CLIENT = "demo-confidential"
BACKEND_CLIENT = "demo-backend"
PUBLIC_REDIRECTS = ("http://localhost:9000/callback", "http://127.0.0.1:9000/callback")
CONFIDENTIAL_REDIRECTS = ("http://localhost:9001/callback", "http://127.0.0.1:9001/callback")
APP_SCOPE = ("launch launch/patient launch/encounter openid fhirUser profile offline_access online_access "
             "patient/*.cruds user/*.cruds")
BACKEND_SCOPE = "system/*.cruds"  # demo only: lets `fhir-server load --token` write; production backends get less
STAFF = (("admin", "administrator"), ("doctor", "doctor"), ("nurse", "nurse"), ("clerk", "clerk"))
PORTAL_USER = "patient"


@dataclass(frozen=True)
class DemoAccounts:
    accounts_file: Path
    key_file: Path


def accounts_file(data_dir: Path) -> Path:
    return data_dir.resolve() / ACCOUNTS_FILE


def key_file(data_dir: Path) -> Path:
    return data_dir.resolve() / KEY_FILE


def how_to(base_url: str, data_dir: Path) -> list[str]:
    """Three lines on getting a token with the demo clients (printed by `serve`, written to the file)."""
    root = base_url.rstrip("/").removesuffix("/fhir")
    return [
        f"backend token:  fhir-server token --client-id {BACKEND_CLIENT} --key {key_file(data_dir)} --url {base_url}",
        (f"load with it:   FHIR_TOKEN=$(fhir-server token --client-id {BACKEND_CLIENT} --key … --scope "
         f"'system/*.cruds') fhir-server load FILES --url {base_url}"),
        (f"sign in (app):  {root}/auth/authorize?response_type=code&client_id={PUBLIC_CLIENT}"
         f"&redirect_uri={PUBLIC_REDIRECTS[0]}&scope=openid+fhirUser+launch/patient+patient/*.rs&aud={base_url}"
         "&state=…&code_challenge=…&code_challenge_method=S256"),
    ]


async def _first(services: Services, resource_type: str) -> str | None:
    """The id of the earliest-stored resource of a type (the demo bundles load in file order)."""
    found = await services.store.find(resource_type, {}, {"_id": 1}, limit=1, sort=[("ts", 1), ("_id", 1)])
    return str(found[0]["_id"]) if found else None


def _write_private(path: Path, text: str) -> None:
    """Write `text` readable by the owner only, even if the file existed with a wider mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    os.chmod(path, 0o600)


async def _empty(store: AuthStore) -> bool:
    return not await store.has_accounts()


async def seed_accounts(services: Services, base_url: str) -> DemoAccounts | None:
    """Create the demo clients and users unless any client or user exists; None when nothing was done."""
    store = services.auth
    if not await _empty(store):
        return None
    data_dir = services.settings.data_dir
    patient = await _first(services, "Patient")
    practitioner = await _first(services, "Practitioner")

    key = ECKey.generate_key("P-384", parameters={"alg": "ES384", "use": "sig"}, private=True, auto_kid=True)
    public_jwks = {"keys": [key.as_dict(private=False)]}
    passwords = {name: secrets.token_urlsafe(12) for name, _ in (*STAFF, (PORTAL_USER, "patient"))}
    _write_private(key_file(data_dir), orjson.dumps(key.as_dict(private=True), option=orjson.OPT_INDENT_2).decode())

    clients: list[dict[str, Any]] = [
        {"client_id": PUBLIC_CLIENT, "kind": "public", "name": "Demo app (public, PKCE)", "scope": APP_SCOPE,
         "redirect_uris": list(PUBLIC_REDIRECTS), "launch_uri": "http://localhost:9000/launch",
         "allowed_origins": ["http://localhost:9000", "http://127.0.0.1:9000"]},
        {"client_id": CONFIDENTIAL_CLIENT, "kind": "confidential", "name": "Demo app (confidential)",
         "scope": APP_SCOPE, "redirect_uris": list(CONFIDENTIAL_REDIRECTS)},
        {"client_id": BACKEND_CLIENT, "kind": "backend", "name": "Demo backend service", "scope": BACKEND_SCOPE,
         "jwks": public_jwks},
    ]
    secret = None
    for fields in clients:
        _, issued = await accounts.create_client(store, fields)
        secret = secret or issued
    users: list[dict[str, Any]] = [{"username": name, "role": role, "password": passwords[name]}
                                   for name, role in STAFF]
    if practitioner:
        next(u for u in users if u["role"] == "doctor")["fhir_user"] = f"Practitioner/{practitioner}"
    if patient:
        users.append({"username": PORTAL_USER, "role": "patient", "patient": patient,
                      "password": passwords[PORTAL_USER]})
    for fields in users:
        await accounts.create_user(store, fields)

    lines = ["# Demo accounts for this development server (generated on first start; delete the auth_* collections",
             "# to regenerate). Never use them in production.", "", "users (username  role  password  fhirUser):"]
    lines += [f"  {u['username']:<8} {u['role']:<14} {u['password']}  {u.get('fhir_user') or '-'}" for u in users]
    if patient:
        lines.append(f"  ({PORTAL_USER} is the portal user of Patient/{patient})")
    lines += ["", "clients:",
              f"  {PUBLIC_CLIENT:<18} public (PKCE); redirect URIs: {', '.join(PUBLIC_REDIRECTS)}",
              f"  {CONFIDENTIAL_CLIENT:<18} confidential; redirect URIs: {', '.join(CONFIDENTIAL_REDIRECTS)}",
              f"  {'':<18} client secret: {secret}",
              f"  {BACKEND_CLIENT:<18} backend (private_key_jwt, ES384); private key: {key_file(data_dir)}",
              "", "get a token:", *(f"  {line}" for line in how_to(base_url, data_dir)), ""]
    _write_private(accounts_file(data_dir), "\n".join(lines))
    log.info("created demo accounts; passwords and secrets are in %s", accounts_file(data_dir))
    return DemoAccounts(accounts_file(data_dir), key_file(data_dir))
