"""Disjunctions as separate flat queries (a union executed by us).

A filter with `$or` is expanded into its branches, each a flat conjunction that an index can drive; the
branches run with the same sort and keyset bound, and their pages are merged and de-duplicated. MongoDB
would plan an `$or` this way itself; the embedded store scans the whole collection for any `$or`, so
doing it here keeps OR searches (`date=ge…`, `name=a,b`, `code-value-…`) indexed on both.
"""

from __future__ import annotations

import itertools
from functools import cmp_to_key
from typing import Any

from fhir_server.db.store import ResourceStore
from fhir_server.search.filters import Filter, all_of
from fhir_server.search.paging import SortSpec, field_value

MAX_BRANCHES = 16


def expand(criteria: Filter) -> list[Filter]:
    """The flat branches whose union is `criteria`; `criteria` itself if it has no top-level `$or` or would
    expand into more than MAX_BRANCHES branches."""
    ors: list[list[Filter]] = []
    rest: dict[str, Any] = {}
    apart: list[Filter] = []
    for key, condition in criteria.items():
        if key == "$or":
            ors.append(condition)
        elif key == "$and":
            for clause in condition:
                if set(clause) == {"$or"}:
                    ors.append(clause["$or"])
                else:
                    apart.append(clause)
        else:
            rest[key] = condition
    if not ors:
        return [criteria]
    total = 1
    for options in ors:
        total *= len(options)
    if total > MAX_BRANCHES:
        return [criteria]
    base = [rest, *apart]
    branches = []
    for choice in itertools.product(*ors):
        branch = all_of([*base, *choice])
        branches.extend(expand(branch))  # an option may itself hold an `$or`
    return branches[:MAX_BRANCHES] if len(branches) <= MAX_BRANCHES else [criteria]


def _compare_values(a: Any, b: Any) -> int:
    if a is None or b is None:
        return 0 if a is b else (-1 if a is None else 1)  # missing sorts first, as in MongoDB
    if hasattr(a, "to_decimal"):
        a = a.to_decimal()
    if hasattr(b, "to_decimal"):
        b = b.to_decimal()
    try:
        return -1 if a < b else (1 if a > b else 0)
    except TypeError:
        return -1 if str(type(a)) < str(type(b)) else 1


def merge(pages: list[list[dict[str, Any]]], sort: SortSpec, limit: int) -> list[dict[str, Any]]:
    """Merge branch pages (each already in `sort` order) into the first `limit` distinct documents."""
    if len(pages) == 1:
        return pages[0][:limit]

    def compare(x: dict[str, Any], y: dict[str, Any]) -> int:
        for field, direction in sort:
            result = _compare_values(field_value(x, field), field_value(y, field))
            if result:
                return result * direction
        return 0

    seen: set[Any] = set()
    out = []
    for doc in sorted(itertools.chain.from_iterable(pages), key=cmp_to_key(compare)):
        if doc["_id"] in seen:
            continue
        seen.add(doc["_id"])
        out.append(doc)
        if len(out) == limit:
            break
    return out


async def find(store: ResourceStore, resource_type: str, criteria: Filter, projection: dict[str, Any], limit: int,
               sort: SortSpec) -> list[dict[str, Any]]:
    """`store.find` over the union of `criteria`'s branches, in `sort` order, at most `limit` documents."""
    branches = expand(criteria)
    if len(branches) == 1:
        return await store.find(resource_type, branches[0], projection, limit=limit, sort=sort)
    pages = [await store.find(resource_type, b, projection, limit=limit, sort=sort) for b in branches]
    return merge(pages, sort, limit)


async def find_ids(store: ResourceStore, resource_type: str, criteria: Filter, limit: int) -> list[str]:
    docs = await find(store, resource_type, criteria, {"_id": 1}, limit, [("_id", 1)])
    return [d["_id"] for d in docs]
