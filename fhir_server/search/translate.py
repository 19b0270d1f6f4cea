"""A parsed `SearchQuery` -> one MongoDB filter over a type's current-version collection.

Plain parameters translate without I/O (`search/filters/*`); chains and `_has` first run their inner
search on the other type and turn the (bounded) matches into ids, so the final filter is always a
single-collection query that indexes can serve.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from fhir_server import errors
from fhir_server.db.store import ResourceStore
from fhir_server.search import branches
from fhir_server.search.filters import Filter, FilterContext, all_of
from fhir_server.search.filters import composite, date, number, quantity, reference, string, token, uri
from fhir_server.search.parse import Criterion, SearchQuery
from fhir_server.search.registry import SearchParam, SearchRegistry, narrowed_by

MAX_CHAIN_MATCHES = 1000  # ids a chain or _has may resolve to; more is a 400 asking for a narrower query
MATCH_NOTHING: Filter = {"_id": {"$in": []}}

# Access control's per-type limit for inner searches: None = the type may not be searched at all.
ScopeFilter = Callable[[str], Awaitable[Filter | None]]


@dataclass
class Translator:
    registry: SearchRegistry
    store: ResourceStore
    ctx: FilterContext
    scope: ScopeFilter | None = None  # limits the inner searches of chains and `_has` (rest/guard.py)

    async def _limited(self, resource_type: str, criteria: Filter) -> Filter | None:
        """`criteria` cut to what the caller may search on `resource_type` (None: nothing of it), so a chain
        or `_has` cannot tell whether an out-of-reach resource exists."""
        if self.scope is None:
            return criteria
        limit = await self.scope(resource_type)
        return None if limit is None else all_of([criteria, limit])

    async def query_filter(self, resource_type: str, query: SearchQuery, extra: Filter | None = None) -> Filter:
        clauses: list[Filter] = [extra] if extra else []
        for criterion in query.criteria:
            clauses.append(await self.criterion_filter(resource_type, criterion))
        return all_of(clauses)

    async def criterion_filter(self, resource_type: str, criterion: Criterion) -> Filter:
        if criterion.has is not None:
            return await self._has(resource_type, criterion)
        if criterion.chain:
            return await self._chain(criterion)
        assert criterion.param is not None
        param = self.registry.get(resource_type, criterion.param.code) or criterion.param
        return self.plain(resource_type, param, criterion)

    def plain(self, resource_type: str, param: SearchParam, criterion: Criterion) -> Filter:
        code, modifier, values = param.code, criterion.modifier, criterion.values
        if code == "_id":
            return self._ids(modifier, values)
        if code == "_lastUpdated":
            if modifier == "missing":
                return {"ts": {"$exists": values[0] != "true"}}
            return date.last_updated_filter(values, self.ctx)
        kind = param.type
        if kind == "token":
            return token.to_filter(code, modifier, values)
        if kind == "string":
            narrow = narrowed_by(resource_type, code, self.registry.for_type(resource_type))
            return string.to_filter(code, modifier, values, narrow)
        if kind == "uri":
            return uri.to_filter(code, modifier, values)
        if kind == "date":
            return date.to_filter(code, modifier, values, self.ctx)
        if kind == "number":
            return number.to_filter(code, modifier, values)
        if kind == "quantity":
            return quantity.to_filter(code, modifier, values)
        if kind == "reference":
            return reference.to_filter(code, modifier, values, param.targets, criterion.target_type, self.ctx)
        if kind == "composite":
            return composite.to_filter(code, modifier, values, self._components(param), self.ctx)
        raise errors.not_supported(f"{code}: {kind} parameters are not supported")

    def _components(self, param: SearchParam) -> list[tuple[str, tuple[str, ...]]]:
        out = []
        for definition, _expression in param.components:
            component = self.registry.by_url(definition)
            if component is None:
                raise errors.not_supported(f"{param.code}: component {definition} is not known")
            out.append((component.type, component.targets))
        return out

    @staticmethod
    def _ids(modifier: str | None, values: tuple[str, ...]) -> Filter:
        if modifier == "missing":
            return {"_id": {"$exists": values[0] != "true"}}
        if modifier == "not":
            return {"_id": {"$nin": list(values)}}
        return {"_id": values[0]} if len(values) == 1 else {"_id": {"$in": list(values)}}

    async def _chain(self, criterion: Criterion) -> Filter:
        link, rest = criterion.chain[0], criterion.chain[1:]
        inner = replace(criterion, chain=rest)
        refs: list[str] = []
        for target in link.target_types:
            if inner.param is not None and not inner.chain and self.registry.get(target, inner.param.code) is None:
                continue
            target_filter = await self._limited(target, await self.criterion_filter(target, inner))
            if target_filter is None:
                continue
            ids = await branches.find_ids(self.store, target, target_filter, MAX_CHAIN_MATCHES + 1)
            if len(ids) > MAX_CHAIN_MATCHES:
                raise errors.FhirError(400, [errors.Issue(
                    "too-costly", f"{criterion.name}: the chain matches more than {MAX_CHAIN_MATCHES} {target} "
                                  "resources; narrow it", expression=(criterion.name,))])
            refs.extend(f"{target}/{i}" for i in ids)
        return {f"ix.{link.param.code}": {"$in": refs}}

    async def _has(self, resource_type: str, criterion: Criterion) -> Filter:
        has = criterion.has
        assert has is not None
        source_filter = await self._limited(has.resource_type, await self.criterion_filter(has.resource_type, has.inner))
        if source_filter is None:
            return MATCH_NOTHING
        field = f"ix.{has.reference.code}"
        docs = await branches.find(self.store, has.resource_type, source_filter, {field: 1}, MAX_CHAIN_MATCHES + 1,
                                   [("_id", 1)])
        if len(docs) > MAX_CHAIN_MATCHES:
            raise errors.FhirError(400, [errors.Issue(
                "too-costly", f"{criterion.name}: more than {MAX_CHAIN_MATCHES} {has.resource_type} resources "
                              "match; narrow it", expression=(criterion.name,))])
        prefix = f"{resource_type}/"
        ids = sorted({ref[len(prefix):] for doc in docs for ref in _values(doc, field) if ref.startswith(prefix)})
        return {"_id": {"$in": ids}}


def _values(doc: dict[str, Any], dotted: str) -> list[str]:
    node: Any = doc
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            return []
    return [v for v in node if isinstance(v, str)] if isinstance(node, list) else [node] if isinstance(node, str) else []
