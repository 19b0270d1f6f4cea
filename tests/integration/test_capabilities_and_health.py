"""CapabilityStatement (GET /metadata) and the health endpoints."""

from __future__ import annotations

import httpx

from fhir_server.model.registry import R4_RESOURCE_TYPES
from tests.conftest import RunningServer


def test_capability_statement_describes_what_is_wired(client: httpx.Client) -> None:
    response = client.get("/metadata")
    assert response.status_code == 200
    cs = response.json()
    assert cs["resourceType"] == "CapabilityStatement"
    assert cs["fhirVersion"] == "4.0.1"
    assert cs["kind"] == "instance"
    assert "application/json-patch+json" in cs["patchFormat"]
    rest = cs["rest"][0]
    types = {r["type"] for r in rest["resource"]}
    assert types == set(R4_RESOURCE_TYPES) and len(types) == 146
    patient = next(r for r in rest["resource"] if r["type"] == "Patient")
    codes = {i["code"] for i in patient["interaction"]}
    assert {"read", "vread", "create", "update", "patch", "delete", "history-instance", "history-type"} <= codes
    assert patient["versioning"] == "versioned-update"
    assert patient["conditionalCreate"] and patient["conditionalUpdate"]
    assert patient["conditionalDelete"] == "single"
    assert {"code": "history-system"} in rest["interaction"]
    assert {"transaction", "batch", "search-system"} <= {i["code"] for i in rest["interaction"]}
    assert "search-type" in codes
    names = {p["name"] for p in patient["searchParam"]}
    assert {"name", "identifier", "birthdate", "_id", "_lastUpdated"} <= names
    assert {"everything", "export"} <= {o["name"] for o in patient["operation"]}
    assert "Observation:subject" in patient["searchRevInclude"]
    assert "export" in {o["name"] for o in rest["operation"]}


def test_health_and_readiness(server: RunningServer) -> None:
    assert httpx.get(f"{server.url}/health").json() == {"status": "ok"}
    ready = httpx.get(f"{server.url}/health/ready")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
