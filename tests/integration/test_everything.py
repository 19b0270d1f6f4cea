"""`Patient/[id]/$everything` and `Encounter/[id]/$everything`: the compartment plus what it references,
paged, with _since, _type and _count."""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Iterator

import httpx
import pytest

from fhir_server.config import Settings
from tests.conftest import SHARED, database_name, start_server

BUNDLES = sorted((SHARED / "fhir" / "synthea").glob("*.json.gz"))[:2]


@pytest.fixture(scope="module")
def loaded(mongodb_uri: str) -> Iterator[tuple[httpx.Client, list[dict]]]:
    running = start_server(Settings(mongodb_uri=mongodb_uri, database=database_name(), auth="off"))
    try:
        with httpx.Client(base_url=running.url + "/fhir", timeout=300) as http:
            responses = []
            for path in BUNDLES:
                response = http.post("", content=gzip.open(path).read(), headers={"Content-Type": "application/fhir+json"})
                assert response.status_code == 200
                responses.append(response.json())
            yield http, responses
    finally:
        running.stop()


def walk(api: httpx.Client, url: str) -> list[dict]:
    entries = []
    response = api.get(url)
    for _ in range(500):
        assert response.status_code == 200, response.text
        bundle = response.json()
        assert bundle["type"] == "searchset"
        entries.extend(bundle.get("entry", []))
        nxt = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
        if not nxt:
            return entries
        response = api.get(nxt[0])
    raise AssertionError("too many pages")


def ids_of(response_bundle: dict) -> set[tuple[str, str]]:
    out = set()
    for entry in response_bundle["entry"]:
        parts = entry["response"]["location"].split("/")
        out.add((parts[-4], parts[-3]))
    return out


def test_patient_everything_is_the_whole_record_paged_without_repeats(loaded: tuple[httpx.Client, list[dict]]) -> None:
    api, responses = loaded
    record = ids_of(responses[0])
    patient_id = next(i for t, i in record if t == "Patient")
    entries = walk(api, f"/Patient/{patient_id}/$everything?_count=40")
    matches = [(e["resource"]["resourceType"], e["resource"]["id"]) for e in entries if e["search"]["mode"] == "match"]
    included = {(e["resource"]["resourceType"], e["resource"]["id"]) for e in entries if e["search"]["mode"] == "include"}
    assert len(matches) == len(set(matches))
    # everything this patient's transaction created: the compartment plus the organisations and practitioners
    assert set(matches) | included == record
    other = next(i for t, i in ids_of(responses[1]) if t == "Patient")
    assert ("Patient", other) not in set(matches) | included


def test_patient_everything_with_type_since_and_errors(loaded: tuple[httpx.Client, list[dict]]) -> None:
    api, responses = loaded
    patient_id = next(i for t, i in ids_of(responses[0]) if t == "Patient")
    only = walk(api, f"/Patient/{patient_id}/$everything?_type=Condition,Patient&_count=100")
    assert {e["resource"]["resourceType"] for e in only if e["search"]["mode"] == "match"} == {"Condition", "Patient"}
    time.sleep(0.02)
    marker = api.get(f"/Patient/{patient_id}").json()
    marker["active"] = True
    updated = api.put(f"/Patient/{patient_id}", json=marker).json()
    since = walk(api, f"/Patient/{patient_id}/$everything?_since={updated['meta']['lastUpdated']}")
    assert [e["resource"]["id"] for e in since if e["search"]["mode"] == "match"] == [patient_id]
    assert api.get("/Patient/nobody/$everything").status_code == 404
    assert api.get(f"/Patient/{patient_id}/$everything", params={"colour": "red"}).status_code == 400


def test_encounter_everything(loaded: tuple[httpx.Client, list[dict]]) -> None:
    api, responses = loaded
    encounter_id = next(i for t, i in ids_of(responses[0]) if t == "Encounter")
    entries = walk(api, f"/Encounter/{encounter_id}/$everything")
    matches = {(e["resource"]["resourceType"], e["resource"]["id"]) for e in entries if e["search"]["mode"] == "match"}
    assert ("Encounter", encounter_id) in matches
    for resource_type, id in matches - {("Encounter", encounter_id)}:
        resource = api.get(f"/{resource_type}/{id}").json()
        assert f"Encounter/{encounter_id}" in json.dumps(resource)
    observations = api.get("/Observation", params={"encounter": f"Encounter/{encounter_id}", "_count": "100"}).json()
    assert {("Observation", e["resource"]["id"]) for e in observations.get("entry", [])} <= matches
