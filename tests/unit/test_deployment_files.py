"""docker-compose.yml and the Dockerfile are wired as the README says (no Docker engine runs here, so this
checks the files themselves)."""

from __future__ import annotations

from pathlib import Path

import yaml

from fhir_server.config import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_compose_runs_mongo_as_a_replica_set_and_points_the_server_at_it() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mongo, fhir = compose["services"]["mongo"], compose["services"]["fhir"]
    assert mongo["image"].startswith("mongo:7")
    assert "--replSet" in mongo["command"]
    replica_set = mongo["command"][mongo["command"].index("--replSet") + 1]
    assert "rs.initiate" in " ".join(mongo["healthcheck"]["test"])
    uri = fhir["environment"]["FHIR_MONGODB_URI"]
    assert uri.startswith("mongodb://mongo:27017") and f"replicaSet={replica_set}" in uri
    assert fhir["depends_on"]["mongo"]["condition"] == "service_healthy"
    assert fhir["build"] == "."
    published = fhir["ports"][0].split(":")[-1]
    assert published == fhir["environment"]["FHIR_PORT"]
    for name in fhir["environment"]:
        assert name.startswith("FHIR_") and name[5:].lower() in Settings.model_fields


def test_dockerfile_installs_the_package_and_serves() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "pip install" in dockerfile and "COPY fhir_server" in dockerfile
    assert 'CMD ["fhir-server", "serve"]' in dockerfile
    assert "FHIR_HOST=0.0.0.0" in dockerfile
