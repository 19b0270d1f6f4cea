"""`Patient/[id]/$everything` and `Encounter/[id]/$everything` (patient-operation-everything.html).

The compartment (official CompartmentDefinitions) plus every resource those resources reference, as a
paged `searchset` Bundle: compartment members are `match` entries in (type, id) order, referenced
resources `include` entries of the page that references them. Each page is one bounded query per type, so
a patient with tens of thousands of resources is walked with `next` links, never loaded at once.
Parameters: `_since` (changed at or after), `_type` (only these types), `_count` (page size).
"""

from __future__ import annotations

from typing import Any

from fhir_server import errors
from fhir_server.context import RequestContext
from fhir_server.rest import guard
from fhir_server.rest.response import FhirResponse
from fhir_server.rest.search import respond
from fhir_server.rest.write import check_id
from fhir_server.search.dates import parse_range
from fhir_server.search.filters import Filter, all_of, any_of
from fhir_server.search.parse import Include, SearchQuery
from fhir_server.search.registry import encounter_compartment, patient_compartment
from fhir_server.services import Services

_KNOWN = {"_since", "_type", "_count", "_cursor", "_format", "_pretty", "start", "end"}


def _compartment_filters(compartment: str, id: str) -> dict[str, Filter]:
    """Per resource type, the filter that selects the members of `compartment`/`id`."""
    member = f"{compartment}/{id}"
    if compartment == "Patient":
        return {t: {"pc": member} for t in patient_compartment()} | {"Patient": {"pc": member}}
    filters: dict[str, Filter] = {}
    for resource_type, params in encounter_compartment().items():
        if params == ("{def}",):
            filters[resource_type] = {"_id": id}
        else:
            filters[resource_type] = any_of([{f"ix.{code}": member} for code in params if code != "{def}"])
    return filters


async def everything(services: Services, ctx: RequestContext, compartment: str, id: str,
                     params: list[tuple[str, str]]) -> FhirResponse:
    check_id(id)
    values: dict[str, str] = {}
    for name, value in params:
        if name not in _KNOWN:
            raise errors.invalid(f"$everything does not take '{name}' (use _since, _type, _count)", name)
        values[name] = value
    if "start" in values or "end" in values:
        raise errors.not_supported("$everything start/end (care dates) are not supported; use _since")
    await guard.check_visible(services, ctx, compartment, id, "r")
    anchor = await services.store.current(compartment, id)
    if anchor is None or anchor.deleted:
        raise errors.not_found(f"{compartment}/{id} is not known")
    filters = _compartment_filters(compartment, id)
    if "_type" in values:
        wanted = {t.strip() for t in values["_type"].split(",") if t.strip()}
        unknown = wanted - services.registry.types
        if unknown:
            raise errors.invalid(f"_type: unknown resource type(s) {', '.join(sorted(unknown))}", "_type")
        filters = {t: f for t, f in filters.items() if t in wanted}
    if "_since" in values:
        since = parse_range(values["_since"], "_since")[0]
        filters = {t: {**f, "ts": {"$gte": since}} for t, f in filters.items()}
    present = {t async for t in services.store.stream_types()}
    ordered = []
    for t, f in sorted(filters.items()):
        if t not in present or t not in services.registry:
            continue
        scope = await guard.type_filter(services, ctx, t, "s")  # types the token may not search are left out
        if scope is not None:
            ordered.append((t, all_of([f, scope])))
    count = services.settings.default_page_size
    if "_count" in values:
        if not values["_count"].isdigit():
            raise errors.invalid(f"_count={values['_count']} is not a whole number", "_count")
        count = min(int(values["_count"]), services.settings.max_page_size)
    applied: tuple[tuple[str, str], ...] = tuple((k, v) for k, v in values.items() if k in ("_since", "_type", "_count"))
    query = SearchQuery(resource_type=None, types=tuple(t for t, _ in ordered), criteria=(), count=count,
                        includes=(Include("*", None, None, False, False),), cursor=values.get("_cursor"),
                        applied=applied)
    path = f"{compartment}/{id}/$everything"
    member = f"{compartment}/{id}"
    listed = {t for t, _ in ordered}

    def member_anyway(resource_type: str, doc: dict[str, Any]) -> bool:
        """A referenced resource that is itself in the Patient compartment comes as a match on its own page."""
        return compartment == "Patient" and resource_type in listed and member in (doc.get("pc") or ())

    return await respond(services, ctx, query, ordered or [(compartment, {"_id": {"$in": []}})], path, member_anyway)

