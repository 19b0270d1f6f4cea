"""Formats: _format and Accept (http.html#mime-type), _pretty."""

from __future__ import annotations

import httpx

from tests.factories import patient


def test_json_media_types_are_served(client: httpx.Client) -> None:
    pid = client.post("/Patient", json=patient()).json()["id"]
    for accept in ("application/fhir+json", "application/json", "*/*", "text/html,application/xhtml+xml,*/*;q=0.8"):
        response = client.get(f"/Patient/{pid}", headers={"Accept": accept})
        assert response.status_code == 200, accept
        assert response.json()["id"] == pid
    assert client.get(f"/Patient/{pid}", headers={"Accept": "application/json"}).headers["content-type"].startswith(
        "application/json")
    for fmt in ("json", "application/fhir+json", "application/json"):
        assert client.get(f"/Patient/{pid}", params={"_format": fmt}).status_code == 200


def test_xml_is_406_with_an_operation_outcome(client: httpx.Client) -> None:
    pid = client.post("/Patient", json=patient()).json()["id"]
    response = client.get(f"/Patient/{pid}", headers={"Accept": "application/fhir+xml"})
    assert response.status_code == 406
    assert response.json()["resourceType"] == "OperationOutcome"
    assert client.get(f"/Patient/{pid}", params={"_format": "xml"}).status_code == 406
    refused = client.post("/Patient", json=patient(), headers={"Accept": "application/fhir+xml"})
    assert refused.status_code == 406


def test_refused_format_writes_nothing(client: httpx.Client) -> None:
    client.post("/Patient", json=patient(), headers={"Accept": "application/xml"})
    assert client.get("/Patient/_history").json()["entry"] == []


def test_pretty_indents_without_changing_content(client: httpx.Client) -> None:
    pid = client.post("/Patient", json=patient()).json()["id"]
    plain = client.get(f"/Patient/{pid}")
    pretty = client.get(f"/Patient/{pid}", params={"_pretty": "true"})
    assert "\n  " in pretty.text and "\n" not in plain.text
    assert pretty.json() == plain.json()
