"""`fhir-server load` (Bundles, NDJSON, directories, gzip; errors per file, non-zero exit) and the demo
data `make run` seeds once."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path

import httpx

from fhir_server.config import Settings
from tests.conftest import SHARED, RunningServer, database_name, start_server


def run_load(server: RunningServer, *paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fhir_server.cli", "load", *map(str, paths),
                           "--url", f"{server.url}/fhir", "--jobs", "3"],
                          capture_output=True, text=True, timeout=600, check=False)


def test_load_directories_bundles_ndjson_and_reports_bad_files(server: RunningServer, tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "nested").mkdir(parents=True)
    synthea = sorted((SHARED / "fhir" / "synthea").glob("*.json.gz"))[0]
    shutil.copy(synthea, data / synthea.name)
    lines = [{"resourceType": "Patient", "id": f"nd-{i}", "gender": "female"} for i in range(7)]
    (data / "nested" / "Patient.ndjson").write_text("\n".join(json.dumps(r) for r in lines) + "\n")
    with gzip.open(data / "nested" / "Organization.ndjson.gz", "wt") as out:
        out.write(json.dumps({"resourceType": "Organization", "id": "org-1", "name": "Mobile clinic"}) + "\n")
    (data / "single.json").write_text(json.dumps({"resourceType": "Practitioner", "id": "dr-1"}))
    bad = tmp_path / "bad.ndjson"
    bad.write_text(json.dumps({"resourceType": "Patient", "id": "never"}) + "\n{not json\n")
    invalid = tmp_path / "invalid.json"
    invalid.write_text(json.dumps({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {"resourceType": "Patient", "id": "half"}, "request": {"method": "PUT", "url": "Patient/half"}},
        {"resource": {"resourceType": "Patient", "gender": "bogus"}, "request": {"method": "POST", "url": "Patient"}}]}))

    result = run_load(server, data, bad, invalid)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "bad.ndjson" in result.stdout and "line 2" in result.stdout
    assert "invalid.json" in result.stdout
    assert "resources/s" in result.stdout
    base = f"{server.url}/fhir"
    assert httpx.get(f"{base}/Patient/nd-6").status_code == 200
    assert httpx.get(f"{base}/Organization/org-1").status_code == 200
    assert httpx.get(f"{base}/Practitioner/dr-1").status_code == 200
    assert httpx.get(f"{base}/Patient/never").status_code == 404  # nothing of a bad file is written
    assert httpx.get(f"{base}/Patient/half").status_code == 404
    entries = len(json.loads(gzip.open(synthea).read())["entry"])
    assert f"loaded {entries + 9} resources from 4/6 files" in result.stdout

    again = run_load(server, data)  # ids are kept: a re-run overwrites, it does not duplicate the NDJSON
    assert again.returncode == 0, again.stdout
    count = httpx.get(f"{base}/Patient", params={"_id": "nd-0,nd-1", "_summary": "count"}).json()["total"]
    assert count == 2


def test_load_with_nothing_to_load_is_a_usage_error(server: RunningServer, tmp_path: Path) -> None:
    assert run_load(server, tmp_path).returncode == 2
    assert run_load(server, tmp_path / "missing").returncode == 2


def test_demo_data_is_seeded_once(mongodb_uri: str) -> None:
    settings = Settings(mongodb_uri=mongodb_uri, database=database_name(), auth="off", seed_demo=True)
    first = start_server(settings)
    try:
        patients = httpx.get(f"{first.url}/fhir/Patient", params={"_summary": "count"}).json()["total"]
        observations = httpx.get(f"{first.url}/fhir/Observation", params={"_summary": "count"}).json()["total"]
        assert patients == 3 and observations > 0
    finally:
        first.stop()
    second = start_server(settings)
    try:
        assert httpx.get(f"{second.url}/fhir/Patient", params={"_summary": "count"}).json()["total"] == 3
    finally:
        second.stop()
