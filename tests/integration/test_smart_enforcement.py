"""SMART scopes enforced on every FHIR path: a security suite that tries to read, list, include, chain,
export and write its way out of what a token allows.

Tokens here are the records the token endpoint writes (AuthStore.save_token: the same function, the same
collection); the server under test is real, so this suite exercises exactly what the API does with a token.
How tokens are obtained is tested in test_smart_auth_server.py and by the real clients.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fhir_server.auth.passwords import hash_password
from fhir_server.config import Settings
from fhir_server.db.auth_store import AuthStore, Client, Grant, User
from tests.conftest import RunningServer, database_name, start_server
from tests.smart_helpers import with_store

CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
VITALS = f"patient/Observation.rs?category={CATEGORY}|vital-signs"
LABS = f"patient/Observation.rs?category={CATEGORY}|laboratory"


@dataclass
class World:
    server: RunningServer
    base: str
    admin: str  # a token that may do anything (system/*.cruds)
    ids: dict[str, str]

    def run(self, work: Any) -> Any:
        return with_store(self.server.settings, work)

    def token(self, scope: str, *, patient: str | None = None, user: str | None = None, client: str = "app",
              lifetime: timedelta = timedelta(hours=1), aud: str | None = None, fhir_user: str | None = None) -> str:
        secret = secrets.token_urlsafe(32)
        if patient is not None and user is None:
            user = "doc"  # patient/ scopes come from a signed-in user's launch
        grant = Grant(client_id=client, scope=scope, aud=aud or self.base, user=user, patient=patient,
                      fhir_user=fhir_user)
        self.run(lambda store: store.save_token(secret, "access", grant, datetime.now(UTC), lifetime))
        return secret

    def api(self, token: str | None) -> httpx.Client:
        headers = {"Content-Type": "application/fhir+json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return httpx.Client(base_url=self.base, headers=headers, timeout=60)


def observation(patient: str, category: str, code: str, **extra: Any) -> dict[str, Any]:
    return {"resourceType": "Observation", "status": "final",
            "category": [{"coding": [{"system": CATEGORY, "code": category}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
            "subject": {"reference": f"Patient/{patient}"}, **extra}


@pytest.fixture(scope="module")
def world(mongodb_uri: str) -> Iterator[World]:
    running = start_server(Settings(mongodb_uri=mongodb_uri, database=database_name(), auth="on"))
    base = running.url + "/fhir"
    world = World(running, base, "", {})

    async def register(store: AuthStore) -> None:
        await store.put_client(Client("app", "Test app", "public",
                                      "patient/*.cruds user/*.cruds launch/patient openid fhirUser",
                                      ("http://localhost/cb",)))
        await store.put_client(Client("backend", "Backend", "backend", "system/*.cruds"))
        await store.put_client(Client("narrow-backend", "Narrow backend", "backend", "system/Patient.rs"))
        for name, role, patient in (("doc", "doctor", None), ("clerk", "clerk", None), ("view", "viewer", None),
                                    ("portal", "patient", "a")):
            await store.put_user(User(name, hash_password("correct horse battery"), role, patient=patient))

    world.run(register)
    world.admin = world.token("system/*.cruds", client="backend")
    with world.api(world.admin) as admin:
        for pid, family in (("a", "Alpha"), ("b", "Bravo")):
            assert admin.put(f"/Patient/{pid}", json={"resourceType": "Patient", "id": pid,
                                                      "name": [{"family": family}]}).status_code == 201
        admin.put("/Practitioner/doc1", json={"resourceType": "Practitioner", "id": "doc1",
                                              "name": [{"family": "Mokoena"}]})
        made = {
            "a-vital": observation("a", "vital-signs", "8867-4", performer=[{"reference": "Practitioner/doc1"}],
                                   focus=[{"reference": "Patient/b"}]),
            "a-lab": observation("a", "laboratory", "2345-7"),
            "b-vital": observation("b", "vital-signs", "8867-4", identifier=[{"system": "urn:x", "value": "b-1"}]),
            "b-lab": observation("b", "laboratory", "4548-4"),
        }
        for key, body in made.items():
            response = admin.post("/Observation", json=body)
            assert response.status_code == 201, response.text
            world.ids[key] = response.json()["id"]
        assert admin.put("/Binary/bin1", json={"resourceType": "Binary", "id": "bin1", "contentType": "text/plain",
                                               "data": "Ym9vaw=="}).status_code == 201
        assert admin.put("/Group/g1", json={"resourceType": "Group", "id": "g1", "type": "person", "actual": True,
                                            "member": [{"entity": {"reference": "Patient/a"}}]}).status_code == 201
    try:
        yield world
    finally:
        running.stop()


def ids(bundle: dict[str, Any], mode: str | None = None) -> set[str]:
    return {f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in bundle.get("entry", [])
            if e.get("search", {}).get("mode", "match") != "outcome" and (mode is None or e["search"]["mode"] == mode)}


# --- authentication -----------------------------------------------------------------------------------

def test_no_token_is_401_with_a_bearer_challenge_but_metadata_is_public(world: World) -> None:
    with world.api(None) as api:
        response = api.get("/Patient/a")
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert response.json()["resourceType"] == "OperationOutcome"
        metadata = api.get("/metadata")
        assert metadata.status_code == 200
        security = metadata.json()["rest"][0]["security"]
        assert security["service"][0]["coding"][0]["code"] == "SMART-on-FHIR"
        uris = {e["url"]: e["valueUri"] for e in security["extension"][0]["extension"]}
        assert uris["token"] == world.server.url + "/auth/token"


@pytest.mark.parametrize("case", ["unknown", "expired", "revoked", "wrong-aud", "not-bearer"])
def test_bad_tokens_are_401_invalid_token(world: World, case: str) -> None:
    if case == "unknown":
        token = secrets.token_urlsafe(32)
    elif case == "expired":
        token = world.token("patient/*.rs", patient="a", lifetime=timedelta(seconds=-1))
    elif case == "revoked":
        token = world.token("patient/*.rs", patient="a")
        world.run(lambda store: store.revoke_token(token))
    elif case == "wrong-aud":
        token = world.token("patient/*.rs", patient="a", aud="https://elsewhere.example/fhir")
    else:
        token = ""
    headers = {"Authorization": "Basic dXNlcjpwYXNz"} if case == "not-bearer" else {}
    with world.api(token) as api:
        response = api.get("/Patient/a", headers=headers)
    assert response.status_code == 401, response.text
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_a_token_revoked_by_another_process_stops_working_within_the_cache_time(world: World) -> None:
    token = world.token("patient/*.rs", patient="a")
    with world.api(token) as api:
        assert api.get("/Patient/a").status_code == 200
        world.run(lambda store: store.revoke_token(token))  # as another server process would
        time.sleep(world.server.settings.auth_cache_seconds + 0.2)
        assert api.get("/Patient/a").status_code == 401


# --- patient/ scopes: the compartment on every read path ----------------------------------------------

def test_patient_token_reads_its_patient_and_gets_404_for_anyone_else(world: World) -> None:
    with world.api(world.token("patient/*.rs", patient="a")) as api:
        assert api.get("/Patient/a").status_code == 200
        assert api.get(f"/Observation/{world.ids['a-lab']}").status_code == 200
        assert api.get("/Patient/b").status_code == 404
        assert api.get(f"/Observation/{world.ids['b-vital']}").status_code == 404
        assert api.get(f"/Observation/{world.ids['b-vital']}/_history/1").status_code == 404
        assert api.get(f"/Observation/{world.ids['b-vital']}/_history").status_code == 404
        assert api.get("/Practitioner/doc1").status_code == 200  # shared reference data
        # outside the compartment but able to hold anybody's data: refused whole
        assert api.get("/Binary/bin1").status_code == 403
        assert api.get("/Task", params={"patient": "Patient/b"}).status_code == 403


def test_the_fhir_user_resource_is_readable_with_the_token_that_names_it(world: World) -> None:
    with world.api(world.token("patient/Patient.rs", patient="a", fhir_user="Practitioner/doc1")) as api:
        assert api.get("/Practitioner/doc1").status_code == 200
        assert api.get("/Practitioner").status_code == 403  # reading oneself is not searching the directory
    with world.api(world.token("patient/Patient.rs", patient="a")) as api:
        assert api.get("/Practitioner/doc1").status_code == 403


def test_patient_token_search_is_confined_and_totals_count_only_what_it_sees(world: World) -> None:
    with world.api(world.token("patient/*.rs", patient="a")) as api:
        bundle = api.get("/Observation", params={"_total": "accurate"}).json()
        assert ids(bundle) == {f"Observation/{world.ids['a-vital']}", f"Observation/{world.ids['a-lab']}"}
        assert bundle["total"] == 2
        assert api.get("/Observation", params={"subject": "Patient/b"}).json().get("entry", []) == []
        assert api.get("/Observation", params={"_summary": "count"}).json()["total"] == 2
        system = api.get("", params={"_type": "Patient,Observation"}).json()
        assert ids(system) == {"Patient/a", f"Observation/{world.ids['a-vital']}", f"Observation/{world.ids['a-lab']}"}
        assert api.get("/Patient/b/Observation").status_code == 404


def test_includes_never_bring_in_another_patients_resources(world: World) -> None:
    with world.api(world.token("patient/*.rs", patient="a")) as api:
        bundle = api.get("/Observation", params={"_include": "Observation:focus"}).json()
        assert "Patient/b" not in ids(bundle)
        both = api.get("/Observation", params={"_include": ["Observation:subject", "Observation:performer"]}).json()
        assert ids(both, "include") == {"Patient/a", "Practitioner/doc1"}
        rev = api.get("/Patient", params={"_revinclude": "Observation:focus"}).json()  # b-vital's focus is b
        assert ids(rev) == {"Patient/a"}


def test_chains_and_has_cannot_probe_other_patients(world: World) -> None:
    with world.api(world.token("patient/*.rs", patient="a")) as api:
        chained = api.get("/Observation", params={"subject:Patient.family": "Bravo"}).json()
        assert ids(chained) == set()
        has = api.get("/Patient", params={"_has:Observation:subject:code": "4548-4"}).json()  # only b has it
        assert ids(has) == set()
        mine = api.get("/Patient", params={"_has:Observation:subject:code": "2345-7"}).json()
        assert ids(mine) == {"Patient/a"}


def test_history_and_everything_are_confined(world: World) -> None:
    with world.api(world.token("patient/*.rs", patient="a")) as api:
        history = api.get("/Observation/_history").json()
        listed = {e["fullUrl"].rsplit("/", 1)[1] for e in history["entry"]}
        assert listed == {world.ids["a-vital"], world.ids["a-lab"]}
        system = api.get("/_history").json()
        assert all("Patient/b" not in e["fullUrl"] and world.ids["b-lab"] not in e["fullUrl"] for e in system["entry"])
        assert any(e["fullUrl"].endswith("Patient/a") for e in system["entry"])
        everything = api.get("/Patient/a/$everything").json()
        got = ids(everything)
        assert "Patient/b" not in got and f"Observation/{world.ids['b-vital']}" not in got
        assert f"Observation/{world.ids['a-vital']}" in got
        assert api.get("/Patient/b/$everything").status_code == 404


def test_batch_entries_are_each_checked(world: World) -> None:
    batch = {"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": "Patient/a"}},
        {"request": {"method": "GET", "url": "Patient/b"}},
        {"request": {"method": "GET", "url": "Observation?code=4548-4"}},
    ]}
    with world.api(world.token("patient/*.rs", patient="a")) as api:
        response = api.post("", json=batch)
    assert response.status_code == 200
    entries = response.json()["entry"]
    assert entries[0]["response"]["status"].startswith("200")
    assert entries[1]["response"]["status"].startswith("404")
    assert entries[2]["resource"].get("entry", []) == []


# --- patient/ scopes: writes -------------------------------------------------------------------------

def count(world: World, query: dict[str, str]) -> int:
    with world.api(world.admin) as admin:
        return int(admin.get("/Observation", params={**query, "_summary": "count"}).json()["total"])


def test_read_only_token_cannot_write(world: World) -> None:
    with world.api(world.token("patient/*.rs", patient="a")) as api:
        response = api.post("/Observation", json=observation("a", "vital-signs", "1-1"))
    assert response.status_code == 403
    assert response.json()["issue"][0]["code"] == "forbidden"


def test_writes_outside_the_compartment_are_refused_and_leave_nothing(world: World) -> None:
    before = count(world, {})
    with world.api(world.token("patient/*.cruds", patient="a")) as api:
        own = api.post("/Observation", json=observation("a", "vital-signs", "29463-7"))
        assert own.status_code == 201
        assert api.post("/Observation", json=observation("b", "vital-signs", "29463-7")).status_code == 403
        moved = {**own.json(), "subject": {"reference": "Patient/b"}}
        assert api.put(f"/Observation/{own.json()['id']}", json=moved).status_code == 403
        assert api.get(f"/Observation/{own.json()['id']}").json()["subject"]["reference"] == "Patient/a"
        b_vital = world.ids["b-vital"]
        body = {**observation("b", "vital-signs", "8867-4"), "id": b_vital}
        assert api.put(f"/Observation/{b_vital}", json=body).status_code == 403
        patch = [{"op": "replace", "path": "/status", "value": "amended"}]
        assert api.patch(f"/Observation/{b_vital}", json=patch,
                         headers={"Content-Type": "application/json-patch+json"}).status_code == 403
        assert api.delete(f"/Observation/{b_vital}").status_code == 404
        transaction = {"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": observation("a", "vital-signs", "3141-9"), "request": {"method": "POST", "url": "Observation"}},
            {"resource": observation("b", "vital-signs", "3141-9"), "request": {"method": "POST", "url": "Observation"}},
        ]}
        assert api.post("", json=transaction).status_code == 403
        # a condition cannot see b's identifier, so it neither returns b's resource nor lets it be changed
        conditional = api.post("/Observation", json=observation("a", "vital-signs", "8867-4"),
                               headers={"If-None-Exist": "identifier=urn:x|b-1"})
        assert conditional.status_code == 201 and conditional.json()["subject"]["reference"] == "Patient/a"
        assert api.delete("/Observation", params={"identifier": "urn:x|b-1"}).status_code in (204, 404)
    with world.api(world.admin) as admin:
        assert admin.get(f"/Observation/{b_vital}").json()["status"] == "final"
    assert count(world, {"code": "3141-9"}) == 0
    assert count(world, {}) == before + 2


# --- v2 query constraints -----------------------------------------------------------------------------

def test_constrained_scope_sees_only_matching_resources(world: World) -> None:
    with world.api(world.token(f"{VITALS} patient/Patient.rs", patient="a")) as api:
        bundle = api.get("/Observation", params={"_total": "accurate"}).json()
        found = [e["resource"] for e in bundle["entry"]]
        assert f"Observation/{world.ids['a-vital']}" in ids(bundle) and bundle["total"] == len(found)
        assert all(o["category"][0]["coding"][0]["code"] == "vital-signs" for o in found)
        assert all(o["subject"]["reference"] == "Patient/a" for o in found)
        assert api.get(f"/Observation/{world.ids['a-vital']}").status_code == 200
        assert api.get(f"/Observation/{world.ids['a-lab']}").status_code == 404
        # _has over a constrained type cannot reveal the lab result either
        assert ids(api.get("/Patient", params={"_has:Observation:subject:code": "2345-7"}).json()) == set()
        assert api.get("/Observation/_history").status_code == 403
        assert api.get("/Condition").status_code == 403


def test_several_constrained_scopes_are_a_union(world: World) -> None:
    with world.api(world.token(f"{VITALS} {LABS}", patient="a")) as api:
        got = ids(api.get("/Observation").json())
    assert {f"Observation/{world.ids['a-vital']}", f"Observation/{world.ids['a-lab']}"} <= got
    assert not {f"Observation/{world.ids['b-vital']}", f"Observation/{world.ids['b-lab']}"} & got


def test_constrained_write_scope_refuses_other_categories(world: World) -> None:
    scope = f"patient/Observation.crus?category={CATEGORY}|vital-signs"
    with world.api(world.token(scope, patient="a")) as api:
        assert api.post("/Observation", json=observation("a", "laboratory", "2093-3")).status_code == 403
        assert api.post("/Observation", json=observation("a", "vital-signs", "2093-3")).status_code == 201
    assert count(world, {"code": "2093-3"}) == 1


def test_v1_scopes_work_like_their_v2_letters(world: World) -> None:
    with world.api(world.token("patient/Observation.read", patient="a")) as api:
        assert api.get(f"/Observation/{world.ids['a-lab']}").status_code == 200
        assert len(ids(api.get("/Observation").json())) >= 2
        assert api.post("/Observation", json=observation("a", "vital-signs", "1-2")).status_code == 403
        assert api.get("/Patient/a").status_code == 403  # no scope names Patient


# --- user/ scopes ∩ role, system/ scopes ∩ client registration ----------------------------------------

def test_user_scopes_are_cut_to_the_role(world: World) -> None:
    with world.api(world.token("user/*.cruds", user="clerk")) as clerk:
        assert clerk.get("/Patient/b").status_code == 200
        assert clerk.get(f"/Observation/{world.ids['b-lab']}").status_code == 403
    with world.api(world.token("user/*.cruds", user="view")) as viewer:
        assert viewer.get(f"/Observation/{world.ids['b-lab']}").status_code == 200
        assert viewer.post("/Observation", json=observation("b", "vital-signs", "1-3")).status_code == 403
    with world.api(world.token("user/*.cruds", user="doc")) as doctor:
        assert doctor.post("/Observation", json=observation("b", "vital-signs", "1-4")).status_code == 201


def test_portal_user_is_confined_to_their_own_patient(world: World) -> None:
    with world.api(world.token("user/*.rs", user="portal")) as api:
        assert api.get("/Patient/a").status_code == 200
        assert api.get("/Patient/b").status_code == 404
        assert ids(api.get("/Patient").json()) == {"Patient/a"}


def test_system_scopes_are_cut_to_the_client_registration(world: World) -> None:
    with world.api(world.token("system/*.rs", client="narrow-backend")) as api:
        assert api.get("/Patient/b").status_code == 200
        assert api.get("/Observation").status_code == 403
    # system/ scopes mean nothing on a token with a user, user/ scopes nothing without one
    with world.api(world.token("system/*.rs user/*.rs", client="backend")) as api:
        assert api.get("/Patient/b").status_code == 200


def test_demoting_a_user_takes_effect_on_tokens_already_issued(world: World) -> None:
    world.run(lambda store: store.put_user(User("temp", hash_password("correct horse battery"), "doctor")))
    token = world.token("user/*.cruds", user="temp")
    with world.api(token) as api:
        assert api.get(f"/Observation/{world.ids['a-lab']}").status_code == 200
        settle = world.server.settings.auth_cache_seconds + 0.2  # changed by another process: within this time
        world.run(lambda store: store.update_user("temp", {"role": "clerk"}))
        time.sleep(settle)
        assert api.get(f"/Observation/{world.ids['a-lab']}").status_code == 403
        world.run(lambda store: store.update_user("temp", {"active": False}))
        time.sleep(settle)
        assert api.get("/Patient/a").status_code == 401


# --- operations ----------------------------------------------------------------------------------------

def test_bulk_export_needs_system_scopes_and_jobs_belong_to_their_client(world: World) -> None:
    headers = {"Prefer": "respond-async", "Accept": "application/fhir+json"}
    with world.api(world.token("patient/*.rs", patient="a")) as api:
        assert api.get("/$export", headers=headers).status_code == 403
        assert api.get("/Patient/$export", headers=headers).status_code == 403
    with world.api(world.token("user/*.rs", user="doc")) as api:
        assert api.get("/Group/g1/$export", headers=headers).status_code == 403
    with world.api(world.admin) as api:
        kicked = api.get("/$export", headers=headers, params={"_type": "Patient"})
        assert kicked.status_code == 202
        status_url = kicked.headers["content-location"]
        for _ in range(300):
            status = api.get(status_url)
            if status.status_code == 200:
                break
        manifest = status.json()
        assert manifest["requiresAccessToken"] is True
        file_url = manifest["output"][0]["url"]
        assert api.get(file_url).status_code == 200
    with world.api(None) as anonymous:
        assert anonymous.get(file_url).status_code == 401
    with world.api(world.token("system/*.rs", client="narrow-backend")) as other:
        assert other.get(status_url).status_code == 404
        assert other.get(file_url).status_code == 404
        assert other.get("/$export", headers=headers, params={"_type": "Observation"}).status_code == 403


def test_group_export_with_user_scopes_when_the_server_allows_it(mongodb_uri: str) -> None:
    settings = Settings(mongodb_uri=mongodb_uri, database=database_name(), auth="on", group_export_user_scopes=True)
    running = start_server(settings)
    try:
        local = World(running, running.url + "/fhir", "", {})

        async def register(store: AuthStore) -> None:
            await store.put_client(Client("app", "Test app", "public", "patient/*.rs user/*.cruds", ("http://l/cb",)))
            await store.put_user(User("doc", hash_password("correct horse battery"), "doctor"))
            await store.put_user(User("clerk", hash_password("correct horse battery"), "clerk"))
            await store.put_user(User("boss", hash_password("correct horse battery"), "administrator"))

        local.run(register)
        headers = {"Prefer": "respond-async", "Accept": "application/fhir+json"}
        with local.api(local.token("user/*.cruds", user="boss")) as admin:
            assert admin.put("/Group/g", json={"resourceType": "Group", "id": "g", "type": "person",
                                               "actual": True}).status_code == 201
        with local.api(local.token("user/*.cruds", user="doc")) as doctor:
            assert doctor.get("/Group/g/$export", headers=headers).status_code == 202
            assert doctor.get("/$export", headers=headers).status_code == 403  # system export still needs system/
        with local.api(local.token("user/*.rs", user="clerk")) as clerk:  # a clerk cannot read Group at all
            assert clerk.get("/Group/g/$export", headers=headers).status_code == 403
    finally:
        running.stop()


def test_reindex_is_for_administrators(world: World) -> None:
    with world.api(world.token("user/*.cruds", user="doc")) as api:
        assert api.post("/$reindex").status_code == 403
    with world.api(world.admin) as api:
        assert api.post("/Patient/$reindex").status_code == 200
