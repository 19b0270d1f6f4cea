"""`serve --seed-demo` with auth on: the demo clients and users exist once, their secrets are in 0600 files
under the data directory and only hashes (and a public key) are in the database."""

from __future__ import annotations

import asyncio
import secrets
import stat
import subprocess
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import orjson
from joserfc.jwk import ECKey
from pymongo import AsyncMongoClient

from fhir_server.auth.passwords import verify_password
from fhir_server.config import Settings
from fhir_server.db.auth_store import CLIENTS, USERS, AuthStore, Grant
from fhir_server.demo import accounts as demo
from tests.conftest import database_name, start_server

T = TypeVar("T")


def _store(settings: Settings, action: Callable[[AuthStore], Awaitable[T]]) -> T:
    async def go() -> T:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongodb_uri, tz_aware=True)
        try:
            return await action(AuthStore(client[settings.database]))
        finally:
            await client.close()

    return asyncio.run(go())


async def _docs(store: AuthStore) -> list[dict[str, Any]]:
    return [d for name in (USERS, CLIENTS) for d in await store.database[name].find({}).to_list()]


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fhir_server.cli", *args], capture_output=True, text=True,
                          timeout=120, check=False, env={"PATH": "/usr/bin:/bin", **(env or {})})


def _passwords(text: str) -> dict[str, str]:
    """username -> password from the accounts file's user lines."""
    found = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[0] in ("admin", "doctor", "nurse", "clerk", "patient") and line.startswith("  "):
            found[parts[0]] = parts[2]
    return found


def test_demo_accounts_are_seeded_once_with_private_files(mongodb_uri: str, tmp_path: Path) -> None:
    settings = Settings(mongodb_uri=mongodb_uri, database=database_name(), auth="on", seed_demo=True,
                        data_dir=tmp_path / "data")
    server = start_server(settings)
    try:
        accounts_file, key_file = demo.accounts_file(settings.data_dir), demo.key_file(settings.data_dir)
        for path in (accounts_file, key_file):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        text = accounts_file.read_text()
        passwords = _passwords(text)
        assert set(passwords) == {"admin", "doctor", "nurse", "clerk", "patient"}

        users = {u.username: u for u in _store(settings, lambda s: s.list_users())}
        assert {u: users[u].role for u in users} == {"admin": "administrator", "doctor": "doctor", "nurse": "nurse",
                                                     "clerk": "clerk", "patient": "patient"}
        for name, password in passwords.items():
            assert verify_password(users[name].password_hash, password), name
        assert users["doctor"].fhir_user and users["doctor"].fhir_user.startswith("Practitioner/")
        linked = users["patient"].patient
        assert linked and users["patient"].fhir_user == f"Patient/{linked}"

        clients = {c.client_id: c for c in _store(settings, lambda s: s.list_clients())}
        assert {c: clients[c].kind for c in clients} == {demo.PUBLIC_CLIENT: "public",
                                                         demo.CONFIDENTIAL_CLIENT: "confidential",
                                                         demo.BACKEND_CLIENT: "backend"}
        secret = next(line.split("client secret: ")[1] for line in text.splitlines() if "client secret: " in line)
        assert clients[demo.CONFIDENTIAL_CLIENT].secret_hash
        assert verify_password(clients[demo.CONFIDENTIAL_CLIENT].secret_hash or "", secret)
        private = orjson.loads(key_file.read_bytes())
        assert private["alg"] == "ES384" and "d" in private
        assert clients[demo.BACKEND_CLIENT].jwks == {"keys": [ECKey.import_key(private).as_dict(private=False)]}

        stored = str(_store(settings, _docs))
        assert not any(p in stored for p in (*passwords.values(), secret, private["d"]))

        # the demo admin, through the demo app, can use the admin API; the Patient link is real
        token = secrets.token_urlsafe(32)
        grant = Grant(client_id=demo.PUBLIC_CLIENT, scope="user/*.cruds", aud=f"{server.url}/fhir", user="admin")
        _store(settings, lambda s: s.save_token(token, "access", grant, datetime.now(UTC), timedelta(hours=1)))
        headers = {"Authorization": f"Bearer {token}"}
        assert httpx.get(f"{server.url}/admin/users", headers=headers).json()["total"] == 5
        assert httpx.get(f"{server.url}/fhir/Patient/{linked}", headers=headers).status_code == 200

        # the backend client's private key gets a token from the real token endpoint, and `load` uses it
        base = f"{server.url}/fhir"
        got = _cli("token", "--client-id", demo.BACKEND_CLIENT, "--key", str(key_file), "--url", base,
                   "--scope", "system/*.cruds")
        assert got.returncode == 0, got.stderr
        backend_token = got.stdout.strip()
        bundle = tmp_path / "one.json"
        bundle.write_text('{"resourceType": "Organization", "id": "clinic-1", "name": "Mobile clinic 1"}')
        assert _cli("load", str(bundle), "--url", base).returncode == 1  # auth on, no token: refused
        loaded = _cli("load", str(bundle), "--url", base, env={"FHIR_TOKEN": backend_token})
        assert loaded.returncode == 0, loaded.stdout + loaded.stderr
        read = httpx.get(f"{base}/Organization/clinic-1", headers={"Authorization": f"Bearer {backend_token}"})
        assert read.status_code == 200
        wrong_key = tmp_path / "wrong.json"
        other = ECKey.generate_key("P-384", parameters={"alg": "ES384"}, private=True, auto_kid=True)
        wrong_key.write_bytes(orjson.dumps(other.as_dict(private=True)))
        refused = _cli("token", "--client-id", demo.BACKEND_CLIENT, "--key", str(wrong_key), "--url", base)
        assert refused.returncode == 1 and refused.stdout == ""
    finally:
        server.stop()

    before = accounts_file.read_text()
    again = start_server(settings)  # accounts exist: nothing is regenerated or overwritten
    try:
        assert accounts_file.read_text() == before
        assert len(_store(settings, lambda s: s.list_users())) == 5
    finally:
        again.stop()
