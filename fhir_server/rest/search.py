"""search: `GET|POST [base]/[type]?…` (type), `GET|POST [base]?…` (system) and
`GET [base]/Patient/[id]/[type]?…` (compartment) — search.html, http.html#search.

Parses (search/parse.py), translates (search/translate.py), runs one keyset page with its includes
(search/execute.py), and renders the searchset Bundle: `self` shows what was applied, dropped parameters
are reported in an OperationOutcome entry, and `next` carries the cursor.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import orjson

from fhir_server import errors
from fhir_server.context import RequestContext
from fhir_server.errors import Issue, operation_outcome
from fhir_server.rest import guard
from fhir_server.rest.response import FhirResponse
from fhir_server.rest.subset import parse_subset
from fhir_server.rest.write import check_id, check_type
from fhir_server.search import execute
from fhir_server.search.filters import FilterContext, all_of
from fhir_server.search.parse import Parser, SearchQuery
from fhir_server.search.registry import patient_compartment_params
from fhir_server.search.translate import Translator
from fhir_server.services import Services


def _parser(services: Services, ctx: RequestContext) -> Parser:
    settings = services.settings
    return Parser(services.search_registry, services.registry.types, ctx.prefer.handling == "strict",
                  settings.max_page_size, settings.default_page_size)


def _translator(services: Services, ctx: RequestContext) -> Translator:
    bases = tuple(b for b in (ctx.base_url, services.settings.base_url) if b)
    return Translator(services.search_registry, services.store, FilterContext(bases, ctx.now),
                      guard.type_filters(services, ctx, "s"))


async def search_type(services: Services, ctx: RequestContext, resource_type: str,
                      params: list[tuple[str, str]]) -> FhirResponse:
    check_type(services, resource_type)
    scope = await guard.search_filter(services, ctx, resource_type)
    query = _parser(services, ctx).parse(resource_type, params)
    criteria = await _translator(services, ctx).query_filter(resource_type, query, scope or None)
    return await respond(services, ctx, query, [(resource_type, criteria)], resource_type)


async def search_system(services: Services, ctx: RequestContext, params: list[tuple[str, str]]) -> FhirResponse:
    query = _parser(services, ctx).parse(None, params)
    types = list(query.types) or [t async for t in services.store.stream_types() if t in services.registry]
    if len(types) > 1 and any(k.param is not None for k in query.sort):
        raise errors.invalid("_sort across several types supports _id only", "_sort")
    translator = _translator(services, ctx)
    filters = []
    for t in sorted(types):
        # types named in `_type` must be searchable (403 otherwise); an unnamed type out of reach is left out
        scope = await guard.search_filter(services, ctx, t) if query.types else \
            await guard.type_filter(services, ctx, t, "s")
        if scope is not None:
            filters.append((t, await translator.query_filter(t, query, scope or None)))
    return await respond(services, ctx, query, filters, None)


async def search_compartment(services: Services, ctx: RequestContext, compartment: str, id: str,
                             resource_type: str, params: list[tuple[str, str]]) -> FhirResponse:
    """Only the Patient compartment is defined here (the clinic's records are patient-centred)."""
    if compartment != "Patient":
        raise errors.not_supported(f"The {compartment} compartment is not supported; use Patient/[id]/[type]")
    check_id(id)
    check_type(services, resource_type)
    if resource_type != "Patient" and not patient_compartment_params(resource_type):
        raise errors.invalid(f"{resource_type} is not in the Patient compartment")
    await guard.check_visible(services, ctx, "Patient", id, "r")
    scope = await guard.search_filter(services, ctx, resource_type)
    extra: dict[str, Any] = all_of([{"pc": f"Patient/{id}"}, scope])  # membership is extracted at write time
    query = _parser(services, ctx).parse(resource_type, params)
    criteria = await _translator(services, ctx).query_filter(resource_type, query, extra)
    return await respond(services, ctx, query, [(resource_type, criteria)], f"Patient/{id}/{resource_type}")


async def respond(services: Services, ctx: RequestContext, query: SearchQuery,
                  filters: list[tuple[str, dict[str, Any]]], path: str | None,
                  skip_included: Callable[[str, dict[str, Any]], bool] | None = None) -> FhirResponse:
    subset = parse_subset(query.summary, ",".join(query.elements) if query.elements is not None else None)
    if query.summary == "count":
        query = replace(query, count=0, includes=())
    page = await execute.run(services.store, services.search_registry, query, filters, skip_included,
                             guard.type_filters(services, ctx, "r"))
    self_url = _url(ctx, path, list(query.applied))
    links = [{"relation": "self", "url": self_url}]
    if page.next_cursor:
        next_params = [p for p in query.applied if p[0] not in ("_count", "_cursor")]
        links.append({"relation": "next", "url": _url(ctx, path, [*next_params, ("_count", str(query.count)),
                                                                  ("_cursor", page.next_cursor)])})
    entries = [_entry(ctx, t, doc, "match", subset) for t, doc in page.matches]
    entries += [_entry(ctx, t, doc, "include", subset) for t, doc in page.included]
    notes = [f"Parameter ignored: {d}" for d in query.dropped] + page.warnings
    if notes:
        issues = [Issue("not-supported" if n.startswith("Parameter") else "too-costly", n, severity="warning")
                  for n in notes]
        entries.append({"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": operation_outcome(issues),
                        "search": {"mode": "outcome"}})
    bundle: dict[str, Any] = {"resourceType": "Bundle", "id": str(uuid.uuid4()), "type": "searchset"}
    if page.total is not None:
        bundle["total"] = page.total
    bundle["link"] = links
    bundle["entry"] = entries
    return FhirResponse(200, bundle)


def _url(ctx: RequestContext, path: str | None, params: list[tuple[str, str]]) -> str:
    query = urlencode(params)
    base = ctx.url(path) if path else ctx.base_url
    return base + (f"?{query}" if query else "")


def _entry(ctx: RequestContext, resource_type: str, doc: dict[str, Any], mode: str, subset: Any) -> dict[str, Any]:
    raw = bytes(doc["raw"])
    resource: Any = subset.apply(raw) if subset.active else orjson.Fragment(raw)
    return {"fullUrl": ctx.url(resource_type, doc["_id"]), "resource": resource, "search": {"mode": mode}}
