"""The admin API over real HTTP with FHIR_AUTH=on: who may call it (administrator tokens with user/*.cruds;
others 403, none 401), CRUD round trips for clients and users, validation as 400 OperationOutcomes, and
secrets shown once. Tokens are the records the token endpoint writes (AuthStore.save_token)."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx
import pytest
from joserfc.jwk import ECKey

from fhir_server.auth import accounts
from fhir_server.auth.passwords import verify_password
from fhir_server.config import Settings
from fhir_server.db.auth_store import CLIENTS, USERS, AuthStore, Grant
from tests.conftest import RunningServer, database_name, start_server
from tests.smart_helpers import with_store

T = TypeVar("T")


@dataclass
class Admin:
    server: RunningServer

    def store(self, action: Callable[[AuthStore], Awaitable[T]]) -> T:
        return with_store(self.server.settings, action)

    def token(self, user: str | None, scope: str = "user/*.cruds", client: str = "console") -> str:
        secret = secrets.token_urlsafe(32)
        grant = Grant(client_id=client, scope=scope, aud=f"{self.server.url}/fhir", user=user)
        self.store(lambda s: s.save_token(secret, "access", grant, datetime.now(UTC), timedelta(hours=1)))
        return secret

    def http(self, token: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=f"{self.server.url}/admin", headers=headers, timeout=30)


@pytest.fixture(scope="module")
def admin(mongodb_uri: str) -> Iterator[Admin]:
    running = start_server(Settings(mongodb_uri=mongodb_uri, database=database_name(), auth="on"))
    world = Admin(running)

    async def setup(store: AuthStore) -> None:
        await accounts.create_client(store, {"client_id": "console", "kind": "public", "name": "Admin console",
                                             "scope": "openid fhirUser user/*.cruds",
                                             "redirect_uris": ["http://localhost:9000/cb"]})
        await accounts.create_client(store, {"client_id": "sync", "kind": "backend", "name": "Sync",
                                             "scope": "system/*.cruds", "jwks": _jwks()})
        await accounts.create_user(store, {"username": "admin", "role": "administrator", "password": "admin-pass-1"})
        await accounts.create_user(store, {"username": "nurse", "role": "nurse", "password": "nurse-pass-1"})

    world.store(setup)
    try:
        yield world
    finally:
        running.stop()


def _jwks() -> dict[str, Any]:
    key = ECKey.generate_key("P-384", parameters={"alg": "ES384"}, private=True, auto_kid=True)
    return {"keys": [key.as_dict(private=False)]}


def _outcome(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    diagnostics: str = body["issue"][0]["diagnostics"]
    return diagnostics


def test_who_may_call_it(admin: Admin) -> None:
    with admin.http(None) as http:
        response = http.get("/users")
        _outcome(response, 401)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    with admin.http("not-a-token") as http:
        _outcome(http.get("/clients"), 401)
    with admin.http(admin.token("nurse")) as http:
        response = http.get("/users")
        _outcome(response, 403)
        assert "insufficient_scope" in response.headers["WWW-Authenticate"]
        _outcome(http.post("/users", json={"username": "x", "role": "administrator", "password": "12345678"}), 403)
    with admin.http(admin.token(None, "system/*.cruds", client="sync")) as http:  # a backend token has no user
        _outcome(http.get("/clients"), 403)
    with admin.http(admin.token("admin", "user/*.rs")) as http:  # an admin, through a read-only app
        _outcome(http.get("/clients"), 403)
    with admin.http(admin.token("admin")) as http:
        response = http.get("/users")
        assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
        assert {u["username"] for u in response.json()["users"]} >= {"admin", "nurse"}
    expired = secrets.token_urlsafe(32)
    grant = Grant(client_id="console", scope="user/*.cruds", aud=f"{admin.server.url}/fhir", user="admin")
    admin.store(lambda s: s.save_token(expired, "access", grant, datetime.now(UTC) - timedelta(hours=2),
                                       timedelta(hours=1)))
    with admin.http(expired) as http:
        _outcome(http.get("/users"), 401)
    other_server = secrets.token_urlsafe(32)
    grant = Grant(client_id="console", scope="user/*.cruds", aud="https://elsewhere.example.org/fhir", user="admin")
    admin.store(lambda s: s.save_token(other_server, "access", grant, datetime.now(UTC), timedelta(hours=1)))
    with admin.http(other_server) as http:
        _outcome(http.get("/users"), 401)


def test_client_round_trip_and_secret_shown_once(admin: Admin) -> None:
    with admin.http(admin.token("admin")) as http:
        created = http.post("/clients", json={"client_id": "ehr", "kind": "confidential", "name": "EHR",
                                              "scope": "launch openid fhirUser user/*.rs",
                                              "redirect_uris": ["https://ehr.example.org/cb"]})
        assert created.status_code == 201, created.text
        assert created.headers["Location"] == "/admin/clients/ehr"
        secret = created.json()["client_secret"]
        stored = admin.store(lambda s: s.get_client("ehr"))
        assert stored is not None and stored.secret_hash and verify_password(stored.secret_hash, secret)

        read = http.get("/clients/ehr").json()
        assert read["has_secret"] is True and "client_secret" not in read and "secret_hash" not in read
        assert all("secret_hash" not in c and "client_secret" not in c for c in http.get("/clients").json()["clients"])
        assert secret not in http.get("/clients").text

        updated = http.put("/clients/ehr", json={"name": "EHR (prod)", "scope": "openid user/*.rs"})
        assert updated.status_code == 200 and updated.json()["name"] == "EHR (prod)"
        assert "client_secret" not in updated.json()
        assert updated.json()["redirect_uris"] == ["https://ehr.example.org/cb"]  # members not sent are kept

        token = admin.token("nurse", client="ehr")
        rotated = http.put("/clients/ehr", json={"rotate_secret": True}).json()
        assert rotated["client_secret"] != secret
        assert admin.store(lambda s: s.load_token(token)).revoked  # type: ignore[union-attr]

        token = admin.token("nurse", client="ehr")
        assert http.put("/clients/ehr", json={"active": False}).json()["active"] is False
        assert admin.store(lambda s: s.load_token(token)).revoked  # type: ignore[union-attr]

        backend = http.post("/clients", json={"client_id": "lab", "kind": "backend", "name": "Lab feed",
                                              "scope": "system/Observation.cruds", "jwks": _jwks()})
        assert backend.status_code == 201 and "client_secret" not in backend.json()
        assert backend.json()["jwks"]["keys"][0]["alg"] == "ES384"

        assert http.delete("/clients/ehr").status_code == 204
        _outcome(http.get("/clients/ehr"), 404)
        _outcome(http.delete("/clients/ehr"), 404)
        _outcome(http.post("/clients", json={"client_id": "lab", "kind": "backend", "name": "Again",
                                             "scope": "system/*.rs", "jwks": _jwks()}), 409)


def test_client_validation_is_a_400_outcome(admin: Admin) -> None:
    before = len(admin.store(lambda s: s.list_clients()))
    with admin.http(admin.token("admin")) as http:
        base = {"kind": "public", "name": "App", "redirect_uris": ["http://localhost:9000/cb"]}
        response = http.post("/clients", json={**base, "scope": "patient/*.everything"})
        assert "not a SMART scope" in _outcome(response, 400)
        assert response.json()["issue"][0]["expression"] == ["scope"]
        assert "system/" in _outcome(http.post("/clients", json={**base, "scope": "system/*.rs"}), 400)
        assert "kind" in _outcome(http.post("/clients", json={**base, "kind": "robot", "scope": "openid"}), 400)
        assert "unknown field" in _outcome(http.post("/clients", json={**base, "scope": "openid", "secret": "x"}), 400)
        assert "list of strings" in _outcome(http.post("/clients", json={**base, "scope": "openid",
                                                                           "redirect_uris": "http://localhost/"}), 400)
        private = ECKey.generate_key("P-384", parameters={"alg": "ES384"}, private=True, auto_kid=True)
        assert "private key" in _outcome(http.post("/clients", json={
            "kind": "backend", "name": "B", "scope": "system/*.rs",
            "jwks": {"keys": [private.as_dict(private=True)]}}), 400)
        assert "JSON object" in _outcome(http.post("/clients", json=["not", "an", "object"]), 400)
        assert "not valid JSON" in _outcome(http.post("/clients", content=b"{oops",
                                                      headers={"Content-Type": "application/json"}), 400)
        _outcome(http.post("/clients", content=b"name=x", headers={"Content-Type": "text/plain"}), 415)
        _outcome(http.post("/clients", content=b"{" + b" " * (70 * 1024) + b"}",
                           headers={"Content-Type": "application/json"}), 413)
        _outcome(http.put("/clients/console", json={"kind": "backend"}), 400)  # the kind is fixed
        _outcome(http.put("/clients/missing", json={"name": "x"}), 404)
    assert len(admin.store(lambda s: s.list_clients())) == before


def test_user_round_trip(admin: Admin) -> None:
    with admin.http(admin.token("admin")) as http:
        created = http.post("/users", json={"username": "sipho", "role": "clerk", "password": "clerk password"})
        assert created.status_code == 201, created.text
        assert created.json() == {"username": "sipho", "role": "clerk", "fhir_user": None, "patient": None,
                                  "active": True, "locked": False, "locked_until": None, "failed_logins": 0}
        assert "clerk password" not in str(admin.store(lambda s: s.get_user("sipho")))

        portal = http.post("/users", json={"username": "lerato", "role": "patient", "patient": "Patient/p-9",
                                           "password": "portal password"})
        assert portal.json()["patient"] == "p-9" and portal.json()["fhir_user"] == "Patient/p-9"
        assert "Patient" in _outcome(http.post("/users", json={"username": "x", "role": "patient",
                                                               "password": "long enough"}), 400)
        assert "role" in _outcome(http.post("/users", json={"username": "x", "role": "chief",
                                                            "password": "long enough"}), 400)
        assert "8 to" in _outcome(http.post("/users", json={"username": "x", "role": "viewer", "password": "short"}),
                                  400)
        _outcome(http.post("/users", json={"username": "sipho", "role": "viewer", "password": "long enough"}), 409)

        assert http.get("/users/sipho").json()["role"] == "clerk"
        assert http.put("/users/sipho", json={"role": "finance"}).json()["role"] == "finance"
        demoted = http.put("/users/lerato", json={"role": "viewer"}).json()
        assert demoted["patient"] is None and demoted["fhir_user"] is None

        async def lock(store: AuthStore) -> None:
            await store.update_user("sipho", {"failed_logins": 3,
                                              "locked_until": datetime.now(UTC) + timedelta(minutes=5)})

        admin.store(lock)
        assert http.get("/users/sipho").json()["locked"] is True
        unlocked = http.post("/users/sipho/unlock")
        assert unlocked.status_code == 200 and unlocked.json()["locked"] is False
        assert unlocked.json()["failed_logins"] == 0

        token = admin.token("sipho")
        assert http.put("/users/sipho", json={"password": "a new password"}).status_code == 200
        assert admin.store(lambda s: s.load_token(token)).revoked  # type: ignore[union-attr]
        stored = admin.store(lambda s: s.get_user("sipho"))
        assert stored is not None and verify_password(stored.password_hash, "a new password")

        _outcome(http.put("/users/admin", json={"role": "viewer"}), 409)  # the last administrator stays
        _outcome(http.delete("/users/admin"), 409)

        token = admin.token("sipho")
        assert http.delete("/users/sipho").status_code == 204
        assert admin.store(lambda s: s.load_token(token)).revoked  # type: ignore[union-attr]
        _outcome(http.get("/users/sipho"), 404)
        _outcome(http.post("/users/sipho/unlock"), 404)
    stored = str(admin.store(lambda s: _all(s, USERS)) + admin.store(lambda s: _all(s, CLIENTS)))
    assert not any(p in stored for p in ("clerk password", "portal password", "a new password", "admin-pass-1"))


async def _all(store: AuthStore, collection: str) -> list[dict[str, Any]]:
    return [d async for d in store.database[collection].find({})]


def test_open_when_auth_is_off(mongodb_uri: str) -> None:
    running = start_server(Settings(mongodb_uri=mongodb_uri, database=database_name(), auth="off"))
    try:
        with httpx.Client(base_url=f"{running.url}/admin", timeout=30) as http:
            assert http.get("/clients").json() == {"total": 0, "clients": []}
            created = http.post("/users", json={"username": "dev", "role": "viewer", "password": "dev password"})
            assert created.status_code == 201
    finally:
        running.stop()
