"""Opening the configured database from a command-line tool (`fhir-server clients|users …`).

Why this exists beside app.py's lifespan: an admin command runs for a second, often while the server is
running. With `FHIR_MONGODB_URI` set it connects there. Without one, the data lives in the embedded store
under `FHIR_DATA_DIR`; if that store is already listening on `FHIR_EMBEDDED_PORT` (a server is running) the
command talks to it (WiredTiger allows one process per data directory, so starting a second store is not an
option), and otherwise it starts the store for the command's duration and stops it after.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from fhir_server.config import Settings
from fhir_server.db import embedded

CONNECT_TIMEOUT_MS = 5000


@asynccontextmanager
async def open_database(settings: Settings) -> AsyncIterator[AsyncDatabase[dict[str, Any]]]:
    """The settings' database, reachable (pinged) for the duration of the `async with`."""
    store_process = None
    uri = settings.mongodb_uri
    if not uri:
        uri = f"mongodb://127.0.0.1:{settings.embedded_port}/?directConnection=true"
        if not await _answers(uri):
            data_dir = settings.data_dir.resolve()
            store_process = embedded.start(data_dir / "db", settings.embedded_port, log_file=data_dir / "store.log")
            uri = store_process.uri
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri, tz_aware=True,
                                                                serverSelectionTimeoutMS=CONNECT_TIMEOUT_MS)
    try:
        database = client[settings.database]
        await database.command("ping")
        yield database
    finally:
        await client.close()
        if store_process is not None:
            store_process.stop()


async def _answers(uri: str) -> bool:
    """Whether a MongoDB-protocol server (a running server's embedded store) already listens at `uri`."""
    probe: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri, serverSelectionTimeoutMS=500,
                                                               connectTimeoutMS=500)
    try:
        await probe.admin.command("ping")
        return True
    except PyMongoError:
        return False
    finally:
        await probe.close()
