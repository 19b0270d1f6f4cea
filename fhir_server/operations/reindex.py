"""`$reindex` at system (`POST [base]/$reindex`) and type level (`POST [base]/[type]/$reindex`).

Re-extracts the search values of every current resource from its stored JSON, so parameters added to the
registry (custom SearchParameters) cover old data too. Works in batches in `_id` order and never loads a
whole collection; a resource updated meanwhile is skipped (its write already extracted fresh values).
"""

from __future__ import annotations

from typing import Any

from fhir_server import errors, fhirjson
from fhir_server.auth import access
from fhir_server.context import RequestContext
from fhir_server.rest.response import FhirResponse
from fhir_server.rest.write import check_type
from fhir_server.services import Services

BATCH = 500


async def reindex(services: Services, ctx: RequestContext, resource_type: str | None) -> FhirResponse:
    if not access.is_administrator(ctx.caller):
        raise errors.forbidden("$reindex is for administrators (an administrator user with user/*.cruds, or system/*.cruds)")
    if resource_type is not None:
        check_type(services, resource_type)
        types = [resource_type]
    else:
        types = [t async for t in services.store.stream_types() if t in services.registry]
    counts: dict[str, int] = {}
    for t in types:
        counts[t] = await _reindex_type(services, t)
    parameters: dict[str, Any] = {
        "resourceType": "Parameters",
        "parameter": [{"name": "count", "valueInteger": sum(counts.values())}]
        + [{"name": "type", "part": [{"name": "type", "valueCode": t}, {"name": "count", "valueInteger": n}]}
           for t, n in sorted(counts.items())],
    }
    return FhirResponse(200, parameters)


async def _reindex_type(services: Services, resource_type: str) -> int:
    store = services.store
    await store.prepare(resource_type)
    done = 0
    last: str | None = None
    while True:
        criteria: dict[str, Any] = {"_id": {"$gt": last}} if last is not None else {}
        docs = await store.find(resource_type, criteria, {"raw": 1, "v": 1}, limit=BATCH, sort=[("_id", 1)])
        if not docs:
            return done
        updates = []
        for doc in docs:
            resource = fhirjson.loads_stored(bytes(doc["raw"]))
            updates.append((doc["_id"], int(doc["v"]), services.extractor.extract(resource_type, resource)))
        done += await store.set_index(resource_type, updates)
        last = docs[-1]["_id"]
