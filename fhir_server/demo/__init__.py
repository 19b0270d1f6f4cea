"""Demo data for `make run`: three Synthea patients (Apache-2.0, see NOTICE) loaded into an empty store,
so a newcomer sees records straight away. Loaded through the same transaction code as `POST [base]`.
Then demo sign-in accounts (demo/accounts.py) when no client or user exists yet."""

from __future__ import annotations

import gzip
import logging
from datetime import UTC, datetime
from importlib import resources

from fhir_server import fhirjson
from fhir_server.context import RequestContext
from fhir_server.demo.accounts import seed_accounts
from fhir_server.rest import bundle
from fhir_server.services import Services

log = logging.getLogger("fhir_server.demo")


async def seed(services: Services, base_url: str) -> int:
    """Load the demo bundles unless the store already holds a Patient, then (with auth on: without it they
    serve no purpose, and their files would only clutter the data directory) the demo accounts unless any
    account exists; returns how many bundle entries loaded."""
    loaded = await _seed_patients(services, base_url)
    if services.settings.auth == "on":
        await seed_accounts(services, base_url)
    return loaded


async def _seed_patients(services: Services, base_url: str) -> int:
    if await services.store.find("Patient", {}, {"_id": 1}, limit=1):
        return 0
    loaded = 0
    for item in sorted(resources.files(__package__).iterdir(), key=lambda p: p.name):
        if not item.name.endswith(".json.gz"):
            continue
        document = fhirjson.parse(gzip.decompress(item.read_bytes()), services.settings.max_json_depth)
        ctx = RequestContext(request_id="demo-seed", base_url=base_url, now=datetime.now(UTC))
        result = await bundle.process(services, ctx, document)
        assert isinstance(result.body, dict)
        loaded += len(result.body["entry"])
    log.info("loaded %d demo resources", loaded)
    return loaded
