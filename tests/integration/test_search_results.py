"""Search results: paging, sorting, totals, _include/_revinclude, chains, _has, compartments, system search
(search.html#return, #include, #chaining, #has)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from fhir_server.config import Settings
from tests.conftest import database_name, start_server

LOINC = "http://loinc.org"


def patient(i: int, org: str | None = None) -> dict:
    resource = {"resourceType": "Patient", "id": f"pat{i:02d}", "name": [{"family": f"Family{i % 5}",
                                                                          "given": [f"Given{i:02d}"]}],
                "birthDate": f"19{50 + i:02d}-01-01", "gender": "female" if i % 2 else "male"}
    if org:
        resource["managingOrganization"] = {"reference": f"Organization/{org}"}
    return resource


def observation(i: int, patient_id: str, code: str) -> dict:
    return {"resourceType": "Observation", "id": f"obs{i:02d}", "status": "final",
            "code": {"coding": [{"system": LOINC, "code": code}]}, "subject": {"reference": f"Patient/{patient_id}"},
            "effectiveDateTime": f"2024-01-{i % 28 + 1:02d}T08:00:00Z",
            "valueQuantity": {"value": 60 + i, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"}}


@pytest.fixture(scope="module")
def api(mongodb_uri: str) -> Iterator[httpx.Client]:
    running = start_server(Settings(mongodb_uri=mongodb_uri, database=database_name(), auth="off"))
    try:
        with httpx.Client(base_url=running.url + "/fhir", timeout=30) as http:
            http.put("/Organization/clinic", json={"resourceType": "Organization", "id": "clinic",
                                                    "name": "Mobile Clinic North"})
            http.put("/Organization/hq", json={"resourceType": "Organization", "id": "hq", "name": "POLMED HQ"})
            http.put("/Organization/clinic", json={"resourceType": "Organization", "id": "clinic",
                                                    "name": "Mobile Clinic North",
                                                    "partOf": {"reference": "Organization/hq"}})
            for i in range(23):
                assert http.put(f"/Patient/pat{i:02d}", json=patient(i, "clinic" if i < 3 else None)).status_code == 201
            for i in range(12):
                code = "8867-4" if i % 2 == 0 else "29463-7"
                http.put(f"/Observation/obs{i:02d}", json=observation(i, f"pat{i % 3:02d}", code))
            yield http
    finally:
        running.stop()


def walk(api: httpx.Client, url: str, **params: str) -> list[dict]:
    bundles = []
    response = api.get(url, params=params) if params else api.get(url)
    while True:
        assert response.status_code == 200, response.text
        bundles.append(response.json())
        nxt = [link["url"] for link in bundles[-1]["link"] if link["relation"] == "next"]
        if not nxt:
            return bundles
        assert len(bundles) < 50
        response = api.get(nxt[0])


def match_ids(bundles: list[dict]) -> list[str]:
    return [e["resource"]["id"] for b in bundles for e in b.get("entry", []) if e["search"]["mode"] == "match"]


def test_paging_walks_every_match_once(api: httpx.Client) -> None:
    bundles = walk(api, "/Patient", _count="5")
    ids = match_ids(bundles)
    assert len(bundles) == 5 and len(ids) == 23 and len(set(ids)) == 23


def test_paging_is_stable_while_data_changes(api: httpx.Client) -> None:
    first = api.get("/Patient", params={"_count": "10", "gender": "male"}).json()
    seen = [e["resource"]["id"] for e in first["entry"]]
    api.put("/Patient/pat00", json={**patient(0, "clinic"), "active": True})  # an update does not move it
    api.post("/Patient", json={"resourceType": "Patient", "gender": "male"})  # a new one may or may not show
    nxt = next(link["url"] for link in first["link"] if link["relation"] == "next")
    rest = match_ids(walk(api, nxt))
    assert not set(seen) & set(rest)
    expected = {f"pat{i:02d}" for i in range(0, 23, 2)}
    assert expected <= set(seen) | set(rest)


def test_sort_ascending_descending_and_several_keys(api: httpx.Client) -> None:
    births = [e["resource"]["birthDate"] for e in api.get("/Patient", params={"_sort": "birthdate", "_count": "50"}).json()["entry"]
              if e["resource"]["id"].startswith("pat")]
    assert births == sorted(births)
    desc = match_ids(walk(api, "/Patient", _sort="-birthdate", _count="4", name="family"))
    assert desc == [f"pat{i:02d}" for i in range(22, -1, -1)]
    two = match_ids(walk(api, "/Patient", _sort="family,-given", _count="3", name="family"))
    expected = sorted((f"pat{i:02d}" for i in range(23)), key=lambda p: (int(p[3:]) % 5, -int(p[3:])))
    assert two == expected


def test_total_modes_and_summary_count(api: httpx.Client) -> None:
    assert api.get("/Patient", params={"name": "family1", "_total": "accurate", "_count": "1"}).json()["total"] == 5
    assert "total" not in api.get("/Patient", params={"name": "family1", "_total": "none", "_count": "1"}).json()
    counted = api.get("/Observation", params={"_summary": "count"}).json()
    assert counted["total"] == 12 and not counted.get("entry")
    assert api.get("/Observation", params={"_count": "0", "_total": "accurate"}).json()["total"] == 12


def test_summary_and_elements_on_entries(api: httpx.Client) -> None:
    entry = api.get("/Patient", params={"_id": "pat01", "_elements": "gender"}).json()["entry"][0]["resource"]
    assert set(entry) == {"resourceType", "id", "meta", "gender"}
    summary = api.get("/Patient", params={"_id": "pat01", "_summary": "true"}).json()["entry"][0]["resource"]
    assert any(t["code"] == "SUBSETTED" for t in summary["meta"]["tag"])


def test_include_and_revinclude_are_complete_on_every_page(api: httpx.Client) -> None:
    for bundle in walk(api, "/Observation", _include="Observation:patient", _count="4"):
        matches = [e for e in bundle["entry"] if e["search"]["mode"] == "match"]
        included = {e["resource"]["id"] for e in bundle["entry"] if e["search"]["mode"] == "include"}
        wanted = {m["resource"]["subject"]["reference"].split("/")[1] for m in matches}
        assert wanted == included
    rev = api.get("/Patient", params={"_id": "pat00,pat01", "_revinclude": "Observation:subject"}).json()
    included = {e["resource"]["id"] for e in rev["entry"] if e["search"]["mode"] == "include"}
    assert included == {f"obs{i:02d}" for i in range(12) if i % 3 in (0, 1)}
    assert all(e["fullUrl"].endswith("/" + e["resource"]["resourceType"] + "/" + e["resource"]["id"])
               for e in rev["entry"])


def test_include_iterate_follows_included_resources(api: httpx.Client) -> None:
    bundle = api.get("/Patient", params={"_id": "pat00", "_include": "Patient:organization",
                                         "_include:iterate": "Organization:partof"}).json()
    included = {e["resource"]["id"] for e in bundle["entry"] if e["search"]["mode"] == "include"}
    assert included == {"clinic", "hq"}
    wildcard = api.get("/Observation", params={"_id": "obs00", "_include": "*"}).json()
    assert {e["resource"]["id"] for e in wildcard["entry"] if e["search"]["mode"] == "include"} == {"pat00"}


def test_chains_and_reverse_chains(api: httpx.Client) -> None:
    def ids(**params: str) -> set[str]:
        return set(match_ids(walk(api, f"/{params.pop('type')}", **params)))

    assert ids(type="Observation", **{"subject:Patient.name": "given01"}) == {"obs01", "obs04", "obs07", "obs10"}
    assert ids(type="Observation", **{"patient.birthdate": "1950"}) == {"obs00", "obs03", "obs06", "obs09"}
    assert ids(type="Observation", **{"subject:Patient.organization.name": "mobile clinic"}) == {
        f"obs{i:02d}" for i in range(12)}
    assert ids(type="Observation", **{"subject:Patient.organization.partof.name": "polmed"}) == {
        f"obs{i:02d}" for i in range(12)}
    assert ids(type="Patient", **{"_has:Observation:patient:code": "29463-7"}) == {"pat00", "pat01", "pat02"}
    assert ids(type="Patient", **{"_has:Observation:subject:value-quantity": "gt69"}) == {"pat01", "pat02"}
    assert ids(type="Organization", **{"_has:Patient:organization:_has:Observation:patient:code": "8867-4"}) == {"clinic"}


def test_compartment_search(api: httpx.Client) -> None:
    bundle = api.get("/Patient/pat01/Observation", params={"code": "29463-7"}).json()
    assert {e["resource"]["id"] for e in bundle["entry"]} == {"obs01", "obs07"}
    assert {e["resource"]["id"] for e in api.get("/Patient/pat01/Patient").json()["entry"]} == {"pat01"}
    assert api.get("/Patient/pat01/Organization").status_code == 400


def test_system_search_with_type_and_common_parameters(api: httpx.Client) -> None:
    bundle = api.get("", params={"_type": "Organization,Observation", "_id": "hq,obs03"}).json()
    assert {(e["resource"]["resourceType"], e["resource"]["id"]) for e in bundle["entry"]} == {
        ("Organization", "hq"), ("Observation", "obs03")}
    everything = match_ids(walk(api, "", _count="7", _lastUpdated="ge2000"))
    assert len(everything) == len(set(everything)) >= 37
    assert api.get("", params={"_type": "Spaceship"}).status_code == 400
