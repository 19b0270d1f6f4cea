"""Test fixtures: one real MongoDB-protocol server per session, a fresh database and a real HTTP server
(uvicorn on loopback) per test.

`FHIR_TEST_MONGODB_URI` points the whole suite at a real `mongod` instead of the embedded SecantusDB.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn

from fhir_server.app import create_app
from fhir_server.config import Settings
from fhir_server.db import embedded

SHARED = Path(__file__).resolve().parents[2] / "shared"
_counter = itertools.count()


@pytest.fixture(scope="session")
def mongodb_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    external = os.environ.get("FHIR_TEST_MONGODB_URI")
    if external:
        yield external
        return
    storage = tmp_path_factory.mktemp("store")
    store = embedded.start(storage, log_file=storage / "store.log")
    try:
        yield store.uri
    finally:
        store.stop()


@dataclass
class RunningServer:
    url: str
    settings: Settings
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)


def start_server(settings: Settings) -> RunningServer:
    port = embedded.free_port()
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    return RunningServer(f"http://127.0.0.1:{port}", settings, server, thread)


def database_name() -> str:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    return f"fhir_test_{worker}_{os.getpid()}_{next(_counter)}"


@pytest.fixture
def settings(mongodb_uri: str) -> Settings:
    return Settings(mongodb_uri=mongodb_uri, database=database_name(), auth="off")


@pytest.fixture
def server(settings: Settings) -> Iterator[RunningServer]:
    running = start_server(settings)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def client(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url + "/fhir", timeout=30,
                      headers={"Content-Type": "application/fhir+json"}) as http:
        yield http


@pytest.fixture(scope="module")
def module_client(mongodb_uri: str) -> Iterator[httpx.Client]:
    """One server and database for a whole module, for suites of many independent resources."""
    running = start_server(Settings(mongodb_uri=mongodb_uri, database=database_name(), auth="off"))
    try:
        with httpx.Client(base_url=running.url + "/fhir", timeout=30,
                          headers={"Content-Type": "application/fhir+json"}) as http:
            yield http
    finally:
        running.stop()
