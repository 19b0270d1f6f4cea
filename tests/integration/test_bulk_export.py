"""Bulk Data $export (Bulk Data IG 2.0): kick-off, polling, manifest, NDJSON files in GridFS, levels,
filters, cancellation, resumption after a server stops, and an export -> re-import round trip."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pymongo

from fhir_server.config import Settings
from tests.conftest import SHARED, RunningServer, database_name, start_server

ASYNC = {"Prefer": "respond-async", "Accept": "application/fhir+json"}
SYNTHEA = sorted((SHARED / "fhir" / "synthea").glob("*.json.gz"))


def load_synthea(base: str, count: int = 2) -> list[dict]:
    out = []
    for path in SYNTHEA[:count]:
        response = httpx.post(base, content=gzip.open(path).read(), timeout=300,
                              headers={"Content-Type": "application/fhir+json"})
        assert response.status_code == 200
        out.append(response.json())
    return out


def kick_off(base: str, path: str, **params: str) -> str:
    response = httpx.get(f"{base}/{path}", params=params, headers=ASYNC)
    assert response.status_code == 202, response.text
    return response.headers["content-location"]


def wait(status_url: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = httpx.get(status_url)
        if response.status_code == 200:
            return response.json()
        assert response.status_code == 202, response.text
        assert response.headers["retry-after"] and response.headers["x-progress"]
        time.sleep(0.2)
    raise AssertionError("export did not finish")


def download(manifest: dict) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for item in manifest["output"]:
        response = httpx.get(item["url"])
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/fhir+ndjson")
        lines = [json.loads(line) for line in response.text.splitlines()]
        assert len(lines) == item["count"]
        assert all(r["resourceType"] == item["type"] for r in lines)
        out.setdefault(item["type"], []).extend(lines)
    return out


def test_kick_off_needs_respond_async_and_valid_parameters(server: RunningServer) -> None:
    base = server.url + "/fhir"
    assert httpx.get(f"{base}/$export").status_code == 400
    for params in ({"_outputFormat": "text/csv"}, {"_type": "Spaceship"}, {"_typeFilter": "Observation?bogus=1"},
                   {"_typeFilter": "nonsense"}, {"_since": "yesterday"}, {"_elements": "id"}):
        response = httpx.get(f"{base}/$export", params=params, headers=ASYNC)
        assert response.status_code == 400, (params, response.text)
        assert response.json()["resourceType"] == "OperationOutcome"
    assert httpx.get(f"{base}/Group/nobody/$export", headers=ASYNC).status_code == 404
    assert httpx.get(f"{base}/$export-status/no-such-job").status_code == 404


def test_system_export_round_trips_through_load(server: RunningServer, mongodb_uri: str, tmp_path: Path) -> None:
    base = server.url + "/fhir"
    load_synthea(base)
    manifest = wait(kick_off(base, "$export"))
    assert manifest["request"].endswith("/$export")
    assert manifest["transactionTime"] and manifest["requiresAccessToken"] is False
    exported = download(manifest)
    for resource_type, resources in exported.items():
        total = httpx.get(f"{base}/{resource_type}", params={"_summary": "count"}).json()["total"]
        assert len(resources) == total, resource_type
    for resource_type, resources in exported.items():
        (tmp_path / f"{resource_type}.ndjson").write_text("\n".join(json.dumps(r) for r in resources) + "\n")
    fresh = start_server(Settings(mongodb_uri=mongodb_uri, database=database_name(), auth="off"))
    try:
        loaded = subprocess.run([sys.executable, "-m", "fhir_server.cli", "load", str(tmp_path),
                                 "--url", f"{fresh.url}/fhir"], capture_output=True, text=True, timeout=600)
        assert loaded.returncode == 0, loaded.stdout + loaded.stderr
        for resource_type, resources in exported.items():
            for resource in resources[:25]:
                again = httpx.get(f"{fresh.url}/fhir/{resource_type}/{resource['id']}").json()
                assert {k: v for k, v in again.items() if k != "meta"} == {k: v for k, v in resource.items() if k != "meta"}
    finally:
        fresh.stop()


def test_type_since_and_type_filter(server: RunningServer) -> None:
    base = server.url + "/fhir"
    load_synthea(base, 1)
    only = download(wait(kick_off(base, "$export", _type="Patient,Condition")))
    assert set(only) == {"Patient", "Condition"}
    filtered = download(wait(kick_off(base, "$export", _type="Observation",
                                      _typeFilter="Observation?code=http://loinc.org|8302-2")))
    assert filtered["Observation"] and all(r["code"]["coding"][0]["code"] == "8302-2" for r in filtered["Observation"])
    time.sleep(0.05)
    since = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    httpx.post(f"{base}/Patient", json={"resourceType": "Patient", "gender": "other"})
    recent = download(wait(kick_off(base, "$export", _since=since)))
    assert {t: len(r) for t, r in recent.items()} == {"Patient": 1}


def test_patient_and_group_level(server: RunningServer) -> None:
    base = server.url + "/fhir"
    responses = load_synthea(base, 2)
    httpx.post(f"{base}/Organization", json={"resourceType": "Organization", "name": "Not patient data"})
    patient_level = download(wait(kick_off(base, "Patient/$export")))
    assert "Organization" not in patient_level and "Practitioner" not in patient_level
    assert len(patient_level["Patient"]) == 2
    first = next(e["response"]["location"].split("/")[-3] for e in responses[0]["entry"]
                 if "/Patient/" in e["response"]["location"])
    group = httpx.post(f"{base}/Group", json={"resourceType": "Group", "type": "person", "actual": True,
                                               "member": [{"entity": {"reference": f"Patient/{first}"}}]}).json()
    grouped = download(wait(kick_off(base, f"Group/{group['id']}/$export")))
    assert [p["id"] for p in grouped["Patient"]] == [first]
    assert all(o["subject"]["reference"] == f"Patient/{first}" for o in grouped.get("Observation", []))


def test_files_split_above_the_size_bound(mongodb_uri: str) -> None:
    running = start_server(Settings(mongodb_uri=mongodb_uri, database=database_name(), auth="off", export_file_max_bytes=20_000))
    try:
        base = running.url + "/fhir"
        load_synthea(base, 1)
        manifest = wait(kick_off(base, "$export", _type="Observation"))
        assert len(manifest["output"]) > 1
        exported = download(manifest)
        total = httpx.get(f"{base}/Observation", params={"_summary": "count"}).json()["total"]
        assert len(exported["Observation"]) == total
        assert len({o["id"] for o in exported["Observation"]}) == total
    finally:
        running.stop()


def test_cancel_removes_the_job_and_its_files(server: RunningServer) -> None:
    base = server.url + "/fhir"
    load_synthea(base, 1)
    status_url = kick_off(base, "$export")
    manifest = wait(status_url)
    cancelled = httpx.delete(status_url)
    assert cancelled.status_code == 202
    assert httpx.get(status_url).status_code == 404
    assert httpx.get(manifest["output"][0]["url"]).status_code == 404


def test_a_job_left_running_by_a_stopped_server_is_finished_by_the_next(mongodb_uri: str) -> None:
    settings = Settings(mongodb_uri=mongodb_uri, database=database_name(), auth="off", export_stale_seconds=1)
    database = pymongo.MongoClient(mongodb_uri)[settings.database]
    now = datetime.now(UTC)
    database["bulk_jobs"].insert_one({
        "_id": "orphan", "status": "running", "owner": "a-server-that-died", "heartbeat": now - timedelta(minutes=5),
        "level": "system", "members": [], "types": None, "since": None, "type_filters": {}, "created": now,
        "transaction_time": now, "request": "http://x/fhir/$export", "base_url": None, "attempts": 1,
        "expires": now + timedelta(hours=1), "output": []})
    running = start_server(settings)
    try:
        manifest = wait(f"{running.url}/fhir/$export-status/orphan", timeout=60)
        assert manifest["output"] == [] or all(o["count"] > 0 for o in manifest["output"])
        assert database["bulk_jobs"].find_one({"_id": "orphan"})["attempts"] == 2
    finally:
        running.stop()
        database.client.close()
