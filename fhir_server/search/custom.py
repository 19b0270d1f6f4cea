"""Custom SearchParameter resources join the registry (search.html#custom).

A SearchParameter written through the API is active for new writes at once; data stored before it gets
its values with `$reindex`. Deleting or retiring it takes it out again. Only parameters on resource types
this server knows, with an expression and a supported type, are accepted; the others are refused at write
time with a 400, so a client never believes a parameter works when it does not.
"""

from __future__ import annotations

from typing import Any

from fhir_server import errors, fhirjson
from fhir_server.db.store import ResourceStore
from fhir_server.search.registry import SearchRegistry

MAX_CUSTOM = 10_000


def check(registry: SearchRegistry, known_types: set[str], resource: dict[str, Any]) -> None:
    """Raises a 400 if `resource` (a SearchParameter) cannot work on this server."""
    param = registry.from_resource(resource)
    unknown = [t for t in param.base if t not in known_types and t not in ("Resource", "DomainResource")]
    if unknown:
        raise errors.invalid(f"SearchParameter.base names unknown resource types: {', '.join(unknown)}",
                             "SearchParameter.base")


def apply(registry: SearchRegistry, old_raw: bytes | None, new_raw: bytes | None) -> None:
    """Bring the registry in line with one SearchParameter's change (create, update or delete)."""
    if old_raw is not None:
        old = fhirjson.loads_stored(old_raw)
        if isinstance(old.get("url"), str) and registry.by_url(old["url"]) is not None and _is_custom(registry, old):
            registry.remove(old["url"])
    if new_raw is not None:
        new = fhirjson.loads_stored(new_raw)
        if new.get("status") != "retired":
            registry.add(registry.from_resource(new))


OFFICIAL = "http://hl7.org/fhir/SearchParameter/"


def _is_custom(registry: SearchRegistry, resource: dict[str, Any]) -> bool:
    """Official parameters stay: a client's copy of one never takes the original away on delete."""
    return not str(resource.get("url", "")).startswith(OFFICIAL)


async def load(store: ResourceStore, registry: SearchRegistry) -> int:
    """At start-up: register every stored SearchParameter that is not retired."""
    docs = await store.find("SearchParameter", {}, {"raw": 1}, limit=MAX_CUSTOM)
    loaded = 0
    for doc in docs:
        resource = fhirjson.loads_stored(bytes(doc["raw"]))
        if resource.get("status") == "retired":
            continue
        try:
            registry.add(registry.from_resource(resource))
            loaded += 1
        except errors.FhirError:
            continue  # stored before a rule tightened; it simply does not apply
    return loaded
