"""batch and transaction Bundles (http.html#transaction): atomicity, order, reference rewriting,
conditional references and per-entry outcomes."""

from __future__ import annotations

import base64
import json

import httpx

from fhir_server.config import Settings
from tests.conftest import database_name, start_server
from tests.factories import patient

MEMBER = "https://www.polmed.co.za/member-number"


def tx(*entries: dict, kind: str = "transaction") -> dict:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def post(resource: dict, full_url: str | None = None, **request: str) -> dict:
    entry = {"resource": resource, "request": {"method": "POST", "url": resource["resourceType"], **request}}
    if full_url:
        entry["fullUrl"] = full_url
    return entry


def history_size(client: httpx.Client) -> int:
    return len(client.get("/_history", params={"_count": 1000}).json()["entry"])


def test_transaction_rewrites_urn_references_everywhere(client: httpx.Client) -> None:
    pat_urn = "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a"
    obs = {"resourceType": "Observation", "status": "final", "code": {"text": "weight"},
           "subject": {"reference": pat_urn},
           "extension": [{"url": "http://example.org/seen-by", "valueReference": {"reference": pat_urn}}],
           "contained": [{"resourceType": "Provenance", "id": "p", "recorded": "2024-01-01T00:00:00Z",
                          "target": [{"reference": pat_urn}], "agent": [{"who": {"reference": pat_urn}}]}]}
    response = client.post("", json=tx(post(obs, "urn:uuid:obs-1"), post(patient(), pat_urn)))
    assert response.status_code == 200, response.text
    bundle = response.json()
    assert bundle["type"] == "transaction-response"
    statuses = [e["response"]["status"] for e in bundle["entry"]]
    assert statuses == ["201 Created", "201 Created"]
    patient_location = bundle["entry"][1]["response"]["location"]
    patient_id = patient_location.split("/")[-3]
    obs_id = bundle["entry"][0]["response"]["location"].split("/")[-3]
    stored = client.get(f"/Observation/{obs_id}").json()
    ref = f"Patient/{patient_id}"
    assert stored["subject"]["reference"] == ref
    assert stored["extension"][0]["valueReference"]["reference"] == ref
    assert stored["contained"][0]["target"][0]["reference"] == ref
    assert client.get("/Observation", params={"subject": ref}).json()["entry"][0]["resource"]["id"] == obs_id


def test_transaction_whose_last_entry_fails_leaves_the_store_exactly_as_before(client: httpx.Client) -> None:
    keep = client.post("/Patient", json=patient(family="Keep")).json()
    before = history_size(client)
    bad = {"resourceType": "Observation", "status": "not-a-status", "code": {"text": "x"}}
    body = tx(post(patient(family="New")),
              {"request": {"method": "DELETE", "url": f"Patient/{keep['id']}"}},
              {"resource": {**keep, "gender": "male"}, "request": {"method": "PUT", "url": f"Patient/{keep['id']}"}},
              post(bad))
    response = client.post("", json=body)
    assert response.status_code == 400
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert "Bundle.entry[3]" in outcome["issue"][0]["diagnostics"]
    assert history_size(client) == before
    assert client.get(f"/Patient/{keep['id']}").json() == keep
    assert client.get("/Patient", params={"family": "New"}).json()["entry"] == []


def test_transaction_processes_delete_post_put_get_in_that_order(client: httpx.Client) -> None:
    pid = client.put("/Patient/order-1", json=patient(id="order-1")).json()["id"]
    body = tx({"request": {"method": "GET", "url": f"Patient/{pid}"}},
              {"resource": patient(id=pid, gender="male"), "request": {"method": "PUT", "url": f"Patient/{pid}"}},
              {"request": {"method": "DELETE", "url": f"Patient/{pid}"}},
              post(patient(family="Posted")))
    bundle = client.post("", json=body).json()
    statuses = [e["response"]["status"] for e in bundle["entry"]]
    # DELETE first, then POST, then PUT (re-creates as version 3), then GET sees the PUT
    assert statuses == ["200 OK", "201 Created", "204 No Content", "201 Created"]
    assert bundle["entry"][0]["resource"]["gender"] == "male"
    assert bundle["entry"][0]["resource"]["meta"]["versionId"] == "3"


def test_conditional_references_resolve_inside_the_transaction(client: httpx.Client) -> None:
    client.post("/Patient", json=patient(identifier=[{"system": MEMBER, "value": "C-1"}]))
    obs = {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
           "subject": {"reference": f"Patient?identifier={MEMBER}|C-1"}}
    bundle = client.post("", json=tx(post(obs))).json()
    obs_id = bundle["entry"][0]["response"]["location"].split("/")[-3]
    assert client.get(f"/Observation/{obs_id}").json()["subject"]["reference"].startswith("Patient/")
    none = {**obs, "subject": {"reference": f"Patient?identifier={MEMBER}|nobody"}}
    refused = client.post("", json=tx(post(none)))
    assert refused.status_code == 412 and "matches no" in refused.text
    client.post("/Patient", json=patient(identifier=[{"system": MEMBER, "value": "C-1"}]))
    many = client.post("", json=tx(post(obs)))
    assert many.status_code == 412 and "more than one" in many.text


def test_conditional_create_in_a_transaction_reuses_the_match_and_references_follow(client: httpx.Client) -> None:
    first = client.post("/Patient", json=patient(identifier=[{"system": MEMBER, "value": "C-2"}])).json()
    urn = "urn:uuid:2f0f3c1e-0000-4000-8000-000000000001"
    obs = {"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "subject": {"reference": urn}}
    body = tx(post(patient(identifier=[{"system": MEMBER, "value": "C-2"}]), urn,
                   ifNoneExist=f"identifier={MEMBER}|C-2"), post(obs))
    bundle = client.post("", json=body).json()
    assert bundle["entry"][0]["response"]["status"] == "200 OK"
    obs_id = bundle["entry"][1]["response"]["location"].split("/")[-3]
    assert client.get(f"/Observation/{obs_id}").json()["subject"]["reference"] == f"Patient/{first['id']}"


def test_batch_entries_succeed_or_fail_on_their_own(client: httpx.Client) -> None:
    good = client.post("/Patient", json=patient()).json()
    patch = base64.b64encode(json.dumps([{"op": "replace", "path": "/gender", "value": "male"}]).encode()).decode()
    body = tx(post(patient(family="BatchOne")),
              post({"resourceType": "Patient", "gender": "nope"}),
              {"request": {"method": "GET", "url": f"Patient/{good['id']}"}},
              {"request": {"method": "GET", "url": "Patient/missing"}},
              {"resource": {"resourceType": "Binary", "contentType": "application/json-patch+json", "data": patch},
               "request": {"method": "PATCH", "url": f"Patient/{good['id']}"}},
              {"resource": patient(id=good["id"]), "request": {"method": "PUT", "url": f"Patient/{good['id']}",
                                                               "ifMatch": 'W/"1"'}},
              {"request": {"method": "GET", "url": "Patient?family=BatchOne"}},
              kind="batch")
    bundle = client.post("", json=body).json()
    assert bundle["type"] == "batch-response"
    statuses = [e["response"]["status"].split()[0] for e in bundle["entry"]]
    assert statuses == ["201", "400", "200", "404", "200", "412", "200"]
    assert bundle["entry"][1]["response"]["outcome"]["resourceType"] == "OperationOutcome"
    assert bundle["entry"][2]["resource"]["id"] == good["id"]
    assert bundle["entry"][6]["resource"]["type"] == "searchset"
    assert client.get(f"/Patient/{good['id']}").json()["gender"] == "male"


def test_bad_bundles_are_refused_with_an_outcome(client: httpx.Client) -> None:
    assert client.post("", json={"resourceType": "Patient"}).status_code == 400
    assert client.post("", json={"resourceType": "Bundle", "type": "collection"}).status_code == 400
    assert client.post("", json=tx({"resource": patient()})).status_code == 400  # no request
    assert client.post("", json=tx({"request": {"method": "TRACE", "url": "Patient"}})).status_code == 400
    assert client.post("", json=tx({"request": {"method": "GET", "url": "https://elsewhere.example/api/thing"}})
                       ).status_code == 400
    dup = "urn:uuid:11111111-1111-4111-8111-111111111111"
    assert client.post("", json=tx(post(patient(), dup), post(patient(), dup))).status_code == 400


def test_entry_count_bound_is_413(mongodb_uri: str) -> None:
    running = start_server(Settings(mongodb_uri=mongodb_uri, database=database_name(), auth="off", max_bundle_entries=3))
    try:
        body = tx(*(post(patient()) for _ in range(4)))
        response = httpx.post(f"{running.url}/fhir", json=body)
        assert response.status_code == 413
        assert response.json()["resourceType"] == "OperationOutcome"
    finally:
        running.stop()
