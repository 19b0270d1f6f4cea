"""`fhir-server clients …` and `fhir-server users …` run as real subprocesses against the test database,
checked through AuthStore: what is stored (hashes only, public keys only), what is printed (a secret once),
what is refused (exit status 1, nothing stored), and that removing or disabling revokes tokens."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import subprocess
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc.jwk import ECKey, RSAKey
from pymongo import AsyncMongoClient

from fhir_server.auth.passwords import verify_password
from fhir_server.db.auth_store import CLIENTS, USERS, AuthStore, Grant
from tests.conftest import database_name

T = TypeVar("T")


class Cli:
    """Runs the command against one fresh database, and reads that database through AuthStore."""

    def __init__(self, uri: str, tmp_path: Path) -> None:
        self.uri, self.database, self.tmp = uri, database_name(), tmp_path

    def __call__(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        env = {"FHIR_MONGODB_URI": self.uri, "FHIR_DATABASE": self.database, "FHIR_DATA_DIR": str(self.tmp / "data"),
               "PATH": "/usr/bin:/bin"}
        return subprocess.run([sys.executable, "-m", "fhir_server.cli", *args], input=stdin, capture_output=True,
                              text=True, env=env, timeout=120, check=False)

    def ok(self, *args: str, stdin: str | None = None) -> str:
        result = self(*args, stdin=stdin)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    def refused(self, *args: str, stdin: str | None = None) -> str:
        result = self(*args, stdin=stdin)
        assert result.returncode == 1, result.stdout + result.stderr
        assert "Traceback" not in result.stderr, result.stderr
        return result.stderr

    def store(self, action: Callable[[AuthStore], Awaitable[T]]) -> T:
        async def go() -> T:
            client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(self.uri, tz_aware=True)
            try:
                return await action(AuthStore(client[self.database]))
            finally:
                await client.close()

        return asyncio.run(go())

    def raw(self, collection: str) -> list[dict[str, Any]]:
        async def docs(store: AuthStore) -> list[dict[str, Any]]:
            return [d async for d in store.database[collection].find({})]

        return self.store(docs)

    def token(self, client_id: str, user: str | None = None) -> str:
        secret = secrets.token_urlsafe(32)
        grant = Grant(client_id=client_id, scope="user/*.rs", aud="http://localhost/fhir", user=user)
        self.store(lambda s: s.save_token(secret, "access", grant, datetime.now(UTC), timedelta(hours=1)))
        return secret

    def revoked(self, token: str) -> bool:
        async def load(store: AuthStore) -> bool:
            record = await store.load_token(token)
            assert record is not None
            return record.revoked

        return self.store(load)


@pytest.fixture
def cli(mongodb_uri: str, tmp_path: Path) -> Cli:
    return Cli(mongodb_uri, tmp_path)


def _b64(number: int) -> str:
    return base64.urlsafe_b64encode(number.to_bytes((number.bit_length() + 7) // 8, "big")).rstrip(b"=").decode()


def _write(path: Path, value: Any) -> Path:
    path.write_text(json.dumps(value))
    return path


def test_clients_add_list_show_remove(cli: Cli, tmp_path: Path) -> None:
    out = cli.ok("clients", "add", "--kind", "public", "--name", "Clinic app", "--id", "clinic-app",
                 "--scope", "launch/patient openid fhirUser patient/*.rs", "--redirect-uri",
                 "http://localhost:9000/callback", "--origin", "http://localhost:9000")
    assert "clinic-app" in out and "secret" not in out

    out = cli.ok("clients", "add", "--kind", "confidential", "--name", "Portal", "--id", "portal",
                 "--scope", "user/*.rs openid", "--redirect-uri", "https://portal.example.org/cb")
    secret = next(line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("client secret:"))
    assert len(secret) >= 40
    stored = next(d for d in cli.raw(CLIENTS) if d["_id"] == "portal")
    assert secret not in json.dumps(stored, default=str)
    assert stored["secret_hash"].startswith("$argon2id$") and verify_password(stored["secret_hash"], secret)

    key = ECKey.generate_key("P-384", parameters={"alg": "ES384"}, private=True, auto_kid=True)
    jwks = _write(tmp_path / "jwks.json", {"keys": [key.as_dict(private=False)]})
    cli.ok("clients", "add", "--kind", "backend", "--name", "Claims sync", "--id", "claims",
           "--scope", "system/Claim.cruds system/Coverage.rs", "--jwks", str(jwks))
    stored_keys = cli.store(lambda s: s.get_client("claims"))
    assert stored_keys is not None and stored_keys.jwks == {"keys": [key.as_dict(private=False)]}

    listing = json.loads(cli.ok("clients", "list", "--json"))
    assert [c["client_id"] for c in listing] == ["claims", "clinic-app", "portal"]
    assert {c["kind"] for c in listing} == {"public", "confidential", "backend"}
    table = cli.ok("clients", "list")
    assert "CLIENT_ID" in table and "portal" in table and "$argon2" not in table and secret not in table
    shown = cli.ok("clients", "show", "portal")
    assert "has_secret" in shown and secret not in shown and "$argon2" not in shown
    assert json.loads(cli.ok("clients", "show", "portal", "--json"))["has_secret"] is True

    token = cli.token("portal")
    cli.ok("clients", "disable", "portal")
    assert cli.revoked(token)
    assert json.loads(cli.ok("clients", "show", "portal", "--json"))["active"] is False
    cli.ok("clients", "enable", "portal")

    rotated = cli.ok("clients", "rotate-secret", "portal", "--json")
    new_secret = json.loads(rotated)["client_secret"]
    stored = next(d for d in cli.raw(CLIENTS) if d["_id"] == "portal")
    assert verify_password(stored["secret_hash"], new_secret) and not verify_password(stored["secret_hash"], secret)

    token = cli.token("claims")
    assert "1 token(s) revoked" in cli.ok("clients", "remove", "claims")
    assert cli.revoked(token)
    assert cli.store(lambda s: s.get_client("claims")) is None
    assert "no client" in cli.refused("clients", "remove", "claims")


def test_bad_clients_are_refused_and_nothing_is_stored(cli: Cli, tmp_path: Path) -> None:
    public = ("clients", "add", "--kind", "public", "--name", "X", "--redirect-uri", "http://localhost:9000/cb")
    assert "not a SMART scope" in cli.refused(*public, "--scope", "patient/*.xyz")
    assert "not a SMART scope" in cli.refused(*public, "--scope", "openid admin")
    assert "backend" in cli.refused(*public, "--scope", "system/*.rs")
    assert "redirect URI" in cli.refused("clients", "add", "--kind", "public", "--name", "X", "--scope", "openid")
    assert "only for localhost" in cli.refused("clients", "add", "--kind", "confidential", "--name", "X",
                                               "--scope", "openid", "--redirect-uri", "http://app.example.org/cb")
    assert "wildcard" in cli.refused(*public[:-1], "http://localhost:9000/*", "--scope", "openid")

    backend = ("clients", "add", "--kind", "backend", "--name", "B", "--scope", "system/*.rs")
    assert "needs its public keys" in cli.refused(*backend)
    ec = ECKey.generate_key("P-384", parameters={"alg": "ES384"}, private=True, auto_kid=True)
    private = _write(tmp_path / "private.json", {"keys": [ec.as_dict(private=True)]})
    assert "private key" in cli.refused(*backend, "--jwks", str(private))
    no_kid = {k: v for k, v in ec.as_dict(private=False).items() if k != "kid"}
    assert "kid" in cli.refused(*backend, "--jwks", str(_write(tmp_path / "nokid.json", {"keys": [no_kid]})))
    es256 = {**ec.as_dict(private=False), "alg": "ES256"}
    assert "RS384 or ES384" in cli.refused(*backend, "--jwks", str(_write(tmp_path / "es256.json", {"keys": [es256]})))
    numbers = rsa.generate_private_key(65537, 1024).public_key().public_numbers()
    small = {"kty": "RSA", "kid": "small", "alg": "RS384", "n": _b64(numbers.n), "e": _b64(numbers.e)}
    assert "2048" in cli.refused(*backend, "--jwks", str(_write(tmp_path / "small.json", {"keys": [small]})))
    big = RSAKey.generate_key(2048, parameters={"alg": "RS384"}, private=True, auto_kid=True).as_dict(private=False)
    cli.ok(*backend, "--id", "rsa", "--jwks", str(_write(tmp_path / "rsa.json", {"keys": [big]})))
    cli.ok("clients", "remove", "rsa")
    (tmp_path / "bad.json").write_text("{not json")
    assert "not JSON" in cli.refused(*backend, "--jwks", str(tmp_path / "bad.json"))
    good = _write(tmp_path / "good.json", {"keys": [ec.as_dict(private=False)]})
    assert "system/" in cli.refused("clients", "add", "--kind", "backend", "--name", "B", "--scope",
                                    "user/*.rs", "--jwks", str(good))
    assert cli.raw(CLIENTS) == []

    cli.ok(*public, "--scope", "openid", "--id", "taken")
    assert "already registered" in cli.refused(*public, "--scope", "openid", "--id", "taken")
    assert cli(*public, "--scope", "openid", "--kind", "robot").returncode == 2  # argparse: not a kind


def test_users_lifecycle(cli: Cli) -> None:
    password = "correct horse battery"
    out = cli.ok("users", "add", "dr.naidoo", "--role", "doctor", "--fhir-user", "Practitioner/p-1",
                 "--password-stdin", stdin=password + "\n")
    assert "dr.naidoo" in out and password not in out
    stored = next(d for d in cli.raw(USERS) if d["_id"] == "dr.naidoo")
    assert password not in json.dumps(stored, default=str)
    assert verify_password(stored["password_hash"], password) and stored["fhir_user"] == "Practitioner/p-1"

    cli.ok("users", "add", "thandi", "--role", "patient", "--patient", "pat-7", "--password-stdin",
           stdin="another password\n")
    thandi = json.loads(cli.ok("users", "show", "thandi", "--json"))
    assert thandi["patient"] == "pat-7" and thandi["fhir_user"] == "Patient/pat-7"
    assert "password_hash" not in thandi
    table = cli.ok("users", "list")
    assert "dr.naidoo" in table and "thandi" in table and "$argon2" not in table
    assert [u["username"] for u in json.loads(cli.ok("users", "list", "--json"))] == ["dr.naidoo", "thandi"]

    cli.ok("users", "set-role", "dr.naidoo", "nurse")
    assert json.loads(cli.ok("users", "show", "dr.naidoo", "--json"))["role"] == "nurse"

    async def lock(store: AuthStore) -> None:
        await store.update_user("dr.naidoo", {"failed_logins": 0,
                                              "locked_until": datetime.now(UTC) + timedelta(minutes=30)})

    cli.store(lock)
    assert json.loads(cli.ok("users", "show", "dr.naidoo", "--json"))["locked"] is True
    cli.ok("users", "unlock", "dr.naidoo")
    assert json.loads(cli.ok("users", "show", "dr.naidoo", "--json"))["locked"] is False

    token = cli.token("app", "dr.naidoo")
    cli.ok("users", "set-password", "dr.naidoo", "--password-stdin", stdin="a brand new one\n")
    assert cli.revoked(token)
    stored = next(d for d in cli.raw(USERS) if d["_id"] == "dr.naidoo")
    assert verify_password(stored["password_hash"], "a brand new one")

    token = cli.token("app", "thandi")
    cli.ok("users", "disable", "thandi")
    assert cli.revoked(token)
    assert json.loads(cli.ok("users", "show", "thandi", "--json"))["active"] is False

    token = cli.token("app", "dr.naidoo")
    assert "1 token(s) revoked" in cli.ok("users", "remove", "dr.naidoo")
    assert cli.revoked(token)
    assert cli.store(lambda s: s.get_user("dr.naidoo")) is None


def test_bad_users_are_refused(cli: Cli) -> None:
    stdin = "long enough password\n"
    assert "not a role" in cli.refused("users", "add", "x", "--role", "surgeon", "--password-stdin", stdin=stdin)
    assert "Patient" in cli.refused("users", "add", "x", "--role", "patient", "--password-stdin", stdin=stdin)
    assert "only role patient" in cli.refused("users", "add", "x", "--role", "clerk", "--patient", "p1",
                                              "--password-stdin", stdin=stdin)
    assert "fhir_user" in cli.refused("users", "add", "x", "--role", "doctor", "--fhir-user", "Observation/1",
                                      "--password-stdin", stdin=stdin)
    assert "8 to 1024" in cli.refused("users", "add", "x", "--role", "viewer", "--password-stdin", stdin="short\n")
    assert "--password-stdin" in cli.refused("users", "add", "x", "--role", "viewer", stdin="")  # no terminal
    assert "username" in cli.refused("users", "add", "bad name", "--role", "viewer", "--password-stdin", stdin=stdin)
    assert cli("users", "add", "x", "--role", "viewer", "--password", "secret123").returncode == 2  # not on argv
    assert cli.raw(USERS) == []

    cli.ok("users", "add", "root", "--role", "administrator", "--password-stdin", stdin=stdin)
    assert "already exists" in cli.refused("users", "add", "root", "--role", "viewer", "--password-stdin", stdin=stdin)
    assert "last active administrator" in cli.refused("users", "remove", "root")
    assert "last active administrator" in cli.refused("users", "set-role", "root", "viewer")
    assert "no user" in cli.refused("users", "unlock", "nobody")
