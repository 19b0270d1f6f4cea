"""Running a translated search: one page of matches in keyset order, the total when asked, and the
`_include`/`_revinclude` resources of that page — complete, or with a warning saying where a bound cut."""

from __future__ import annotations

from dataclasses import dataclass, field
from collections.abc import Callable
from typing import Any

from fhir_server.db.store import ResourceStore
from fhir_server.search.paging import SortSpec, after, decode_cursor, encode_cursor, field_value
from fhir_server.search.parse import Include, SearchQuery
from fhir_server.search.registry import SearchRegistry
from fhir_server.search.translate import ScopeFilter
from fhir_server.search import branches
from fhir_server.search.filters import all_of

MAX_INCLUDED = 1000  # included resources per page
MAX_ITERATE = 3  # rounds of :iterate


@dataclass
class Page:
    matches: list[tuple[str, dict[str, Any]]]  # (resource type, stored document with raw + ix)
    included: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    next_cursor: str | None = None
    total: int | None = None
    warnings: list[str] = field(default_factory=list)


def sort_spec(query: SearchQuery) -> SortSpec:
    spec: SortSpec = []
    for key in query.sort:
        if key.param is None:
            spec.append(("_id", -1 if key.descending else 1))
            break
        name = "ts" if key.param.code == "_lastUpdated" else f"sk.{key.param.code}"
        spec.append((name, -1 if key.descending else 1))
    if not spec or spec[-1][0] != "_id":
        spec.append(("_id", 1))
    return spec


def _projection(query: SearchQuery, spec: SortSpec) -> dict[str, Any]:
    projection: dict[str, Any] = {"raw": 1, "v": 1, "ts": 1}
    for name, _ in spec:
        projection[name] = 1
    for include in query.includes:
        if include.reverse:
            continue
        if include.param is None:
            projection["ix"] = 1
        else:
            projection[f"ix.{include.param.code}"] = 1
    if "ix" in projection:
        projection = {k: v for k, v in projection.items() if not k.startswith("ix.")}
    return projection


async def run(store: ResourceStore, registry: SearchRegistry, query: SearchQuery,
              filters: list[tuple[str, dict[str, Any]]], skip_included: Callable[[str, dict[str, Any]], bool] | None = None,
              scope: ScopeFilter | None = None) -> Page:
    """`filters` is one (type, filter) per resource type searched (several for system search), in the
    order results are listed. `skip_included` leaves out included resources that will be matches anyway
    (`$everything`: members of the compartment). `scope` limits what may be included, per type (access
    control: an included resource must be one the caller may read)."""
    spec = sort_spec(query)
    projection = _projection(query, spec)
    start_type: str | None = None
    last: list[Any] | None = None
    if query.cursor:
        last, start_type = decode_cursor(query.cursor)
    wanted = query.count
    matches: list[tuple[str, dict[str, Any]]] = []
    more = False
    started = start_type is None
    for resource_type, criteria in filters:
        if not started:
            if resource_type != start_type:
                continue
            started = True
        page_filter = criteria
        if last is not None and (start_type is None or resource_type == start_type):
            page_filter = all_of([criteria, after(spec, last)])
        if wanted - len(matches) <= 0:
            if await branches.find_ids(store, resource_type, page_filter, 1):
                more = True
                break
            continue
        docs = await branches.find(store, resource_type, page_filter, projection, wanted - len(matches) + 1, spec)
        if len(docs) > wanted - len(matches):
            more = True
            docs = docs[: wanted - len(matches)]
        matches.extend((resource_type, d) for d in docs)
        if more:
            break
    page = Page(matches)
    if more and matches:
        last_type, last_doc = matches[-1]
        page.next_cursor = encode_cursor([field_value(last_doc, f) for f, _ in spec],
                                         last_type if len(filters) > 1 else None)
    if query.total in ("accurate", "estimate") or query.summary == "count":
        page.total = sum([await store.count(t, f) for t, f in filters])
    elif not more and not query.cursor:
        page.total = len(matches)
    if query.includes and matches:
        await _include(store, registry, query.includes, page, scope)
        if skip_included is not None:
            page.included = [(t, d) for t, d in page.included if not skip_included(t, d)]
    return page


def _local_refs(values: Any, target: str | None) -> list[tuple[str, str]]:
    out = []
    for value in values if isinstance(values, list) else [values] if values else []:
        if not isinstance(value, str) or "://" in value or value.count("/") != 1:
            continue
        resource_type, id = value.split("/")
        if target is None or resource_type == target:
            out.append((resource_type, id))
    return out


async def _include(store: ResourceStore, registry: SearchRegistry, includes: tuple[Include, ...], page: Page,
                   scope: ScopeFilter | None) -> None:
    seen = {(t, d["_id"]) for t, d in page.matches}
    frontier = list(page.matches)
    for round_number in range(MAX_ITERATE + 1):
        wanted: dict[str, set[str]] = {}
        found: list[tuple[str, dict[str, Any]]] = []
        for include in includes:
            if round_number > 0 and not include.iterate:
                continue
            if include.reverse:
                found.extend(await _reverse(store, include, frontier, MAX_INCLUDED + 1 - len(page.included), scope))
                continue
            for resource_type, doc in frontier:
                if include.source not in ("*", resource_type):
                    continue
                ix = doc.get("ix") or {}
                codes = [include.param.code] if include.param else [
                    code for code, p in registry.for_type(resource_type).items() if p.type == "reference"]
                for code in codes:
                    for ref_type, ref_id in _local_refs(ix.get(code), include.target):
                        if (ref_type, ref_id) not in seen:
                            wanted.setdefault(ref_type, set()).add(ref_id)
        for ref_type, ids in wanted.items():
            criteria = await _scoped(scope, ref_type, {"_id": {"$in": sorted(ids)}})
            if criteria is None:
                continue
            docs = await store.find(ref_type, criteria, _included_projection(includes), limit=MAX_INCLUDED + 1)
            found.extend((ref_type, d) for d in docs)
        new = []
        for resource_type, doc in found:
            key = (resource_type, doc["_id"])
            if key in seen:
                continue
            seen.add(key)
            if len(page.included) >= MAX_INCLUDED:
                page.warnings.append(f"Only the first {MAX_INCLUDED} included resources are returned on this page; "
                                     "use a smaller _count to get them all")
                return
            page.included.append((resource_type, doc))
            new.append((resource_type, doc))
        if not new:
            return
        frontier = new


def _included_projection(includes: tuple[Include, ...]) -> dict[str, int]:
    """What an included resource needs: the bytes served, plus its references only if `:iterate` follows
    them (and `pc`, by which `$everything` drops members it lists as matches anyway)."""
    projection = {"raw": 1, "v": 1, "ts": 1, "pc": 1}
    if any(i.iterate for i in includes):
        projection["ix"] = 1
    return projection


async def _scoped(scope: ScopeFilter | None, resource_type: str, criteria: dict[str, Any]) -> dict[str, Any] | None:
    if scope is None:
        return criteria
    limit = await scope(resource_type)
    return None if limit is None else all_of([criteria, limit])


async def _reverse(store: ResourceStore, include: Include, frontier: list[tuple[str, dict[str, Any]]],
                   limit: int, scope: ScopeFilter | None) -> list[tuple[str, dict[str, Any]]]:
    assert include.param is not None
    targets = set(include.param.targets)
    refs = [f"{t}/{d['_id']}" for t, d in frontier if not targets or t in targets]
    if not refs or limit <= 0:
        return []
    criteria = await _scoped(scope, include.source, {f"ix.{include.param.code}": {"$in": refs}})
    if criteria is None:
        return []
    docs = await store.find(include.source, criteria, _included_projection((include,)), limit=max(limit, 1))
    return [(include.source, d) for d in docs]
