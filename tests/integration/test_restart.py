"""Data survives a restart of the server and of the embedded store (`make run` twice)."""

from __future__ import annotations

from pathlib import Path

import httpx

from fhir_server.config import Settings
from fhir_server.db import embedded
from tests.conftest import start_server
from tests.factories import patient


def test_embedded_store_keeps_data_across_restarts(tmp_path: Path) -> None:
    port = embedded.free_port()
    settings = Settings(mongodb_uri=None, data_dir=tmp_path / "data", auth="off", embedded_port=port)
    first = start_server(settings)  # no URI: the app starts the embedded store itself
    try:
        created = httpx.post(f"{first.url}/fhir/Patient", json=patient()).json()
    finally:
        first.stop()
    assert (tmp_path / "data" / "db").is_dir()
    second = start_server(settings)
    try:
        again = httpx.get(f"{second.url}/fhir/Patient/{created['id']}")
        assert again.status_code == 200
        assert again.json() == created
    finally:
        second.stop()
