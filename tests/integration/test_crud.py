"""create, read, vread, update, delete over real HTTP (http.html#create, #read, #vread, #update, #delete)."""

from __future__ import annotations

import json

import httpx

from tests.factories import observation, patient


def create(client: httpx.Client, resource: dict) -> httpx.Response:
    response = client.post(f"/{resource['resourceType']}", json=resource)
    assert response.status_code == 201, response.text
    return response


def test_create_assigns_id_and_answers_201_with_location_etag_last_modified(client: httpx.Client) -> None:
    response = client.post("/Patient", json=patient(id="client-chosen"))
    assert response.status_code == 201
    body = response.json()
    assert body["id"] != "client-chosen"  # the server ignores an id on create
    assert response.headers["location"].endswith(f"/fhir/Patient/{body['id']}/_history/1")
    assert response.headers["etag"] == 'W/"1"'
    assert response.headers["last-modified"].endswith("GMT")
    assert body["meta"]["versionId"] == "1"
    assert response.headers["content-type"].startswith("application/fhir+json")


def test_read_returns_what_was_created(client: httpx.Client) -> None:
    created = create(client, patient()).json()
    response = client.get(f"/Patient/{created['id']}")
    assert response.status_code == 200
    assert response.json() == created
    assert response.headers["etag"] == 'W/"1"'


def test_read_unknown_id_is_404_operation_outcome(client: httpx.Client) -> None:
    response = client.get("/Patient/does-not-exist")
    assert response.status_code == 404
    assert response.json()["resourceType"] == "OperationOutcome"
    assert response.json()["issue"][0]["code"] == "not-found"


def test_update_increments_version_and_vread_keeps_each_version(client: httpx.Client) -> None:
    created = create(client, patient()).json()
    pid = created["id"]
    changed = {**created, "gender": "male"}
    response = client.put(f"/Patient/{pid}", json=changed)
    assert response.status_code == 200
    assert response.headers["etag"] == 'W/"2"'
    assert response.json()["meta"]["versionId"] == "2"
    assert client.get(f"/Patient/{pid}/_history/1").json()["gender"] == "female"
    assert client.get(f"/Patient/{pid}/_history/2").json()["gender"] == "male"
    assert client.get(f"/Patient/{pid}/_history/3").status_code == 404
    assert client.get(f"/Patient/{pid}/_history/abc").status_code == 404


def test_update_as_create_with_client_id(client: httpx.Client) -> None:
    response = client.put("/Patient/polmed-12345", json=patient(id="polmed-12345"))
    assert response.status_code == 201
    assert response.json()["id"] == "polmed-12345"
    assert client.get("/Patient/polmed-12345").status_code == 200


def test_client_meta_is_kept_and_server_meta_is_owned(client: httpx.Client) -> None:
    meta = {"versionId": "99", "lastUpdated": "2000-01-01T00:00:00Z", "source": "urn:polmed:erp",
            "profile": ["http://example.org/StructureDefinition/clinic-patient"],
            "tag": [{"system": "http://example.org/tags", "code": "mobile-clinic"}],
            "security": [{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}]}
    body = create(client, patient(meta=meta)).json()
    assert body["meta"]["versionId"] == "1"
    assert not body["meta"]["lastUpdated"].startswith("2000")
    for key in ("source", "profile", "tag", "security"):
        assert body["meta"][key] == meta[key]


def test_delete_then_read_is_410_and_recreate_continues_versions(client: httpx.Client) -> None:
    pid = create(client, patient()).json()["id"]
    deleted = client.delete(f"/Patient/{pid}")
    assert deleted.status_code == 204
    assert deleted.headers["etag"] == 'W/"2"'
    gone = client.get(f"/Patient/{pid}")
    assert gone.status_code == 410
    assert gone.json()["issue"][0]["code"] == "deleted"
    assert client.get(f"/Patient/{pid}/_history/1").status_code == 200
    assert client.get(f"/Patient/{pid}/_history/2").status_code == 410
    again = client.delete(f"/Patient/{pid}")
    assert again.status_code == 204  # deleting a deleted resource is a no-op
    recreated = client.put(f"/Patient/{pid}", json=patient(id=pid))
    assert recreated.status_code == 201
    assert recreated.json()["meta"]["versionId"] == "3"
    assert client.get(f"/Patient/{pid}").status_code == 200


def test_delete_of_missing_resource_answers_as_capability_statement_declares(client: httpx.Client) -> None:
    response = client.delete("/Patient/never-was")
    documentation = client.get("/metadata").json()["rest"][0]["documentation"]
    assert response.status_code == 204
    assert "answers 204" in documentation


def test_prefer_return_minimal_representation_and_operation_outcome(client: httpx.Client) -> None:
    minimal = client.post("/Patient", json=patient(), headers={"Prefer": "return=minimal"})
    assert minimal.status_code == 201 and minimal.content == b""
    assert minimal.headers["location"]
    outcome = client.post("/Patient", json=patient(), headers={"Prefer": "return=OperationOutcome"})
    assert outcome.json()["resourceType"] == "OperationOutcome"
    assert outcome.json()["issue"][0]["severity"] == "information"
    full = client.post("/Patient", json=patient(), headers={"Prefer": "return=representation"})
    assert full.json()["resourceType"] == "Patient"


def test_decimals_keep_their_precision(client: httpx.Client) -> None:
    body = json.dumps(observation("Patient/x", value=0)).replace('"value": 0', '"value": 72.50').encode()
    created = client.post("/Observation", content=body)
    assert created.status_code == 201, created.text
    raw = client.get(f"/Observation/{created.json()['id']}").text
    assert '"value":72.50' in raw


def test_summary_and_elements_subset_a_read(client: httpx.Client) -> None:
    pid = create(client, patient(text={"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},
                                 maritalStatus={"text": "Married"})).json()["id"]
    summary = client.get(f"/Patient/{pid}", params={"_summary": "true"}).json()
    assert "name" in summary and "maritalStatus" not in summary and "text" not in summary
    assert any(t["code"] == "SUBSETTED" for t in summary["meta"]["tag"])
    elements = client.get(f"/Patient/{pid}", params={"_elements": "gender"}).json()
    assert set(elements) == {"resourceType", "id", "meta", "gender"}
    data = client.get(f"/Patient/{pid}", params={"_summary": "data"}).json()
    assert "text" not in data and "maritalStatus" in data
    text = client.get(f"/Patient/{pid}", params={"_summary": "text"}).json()
    assert set(text) == {"resourceType", "id", "meta", "text"}
    assert client.get(f"/Patient/{pid}", params={"_summary": "bogus"}).status_code == 400
