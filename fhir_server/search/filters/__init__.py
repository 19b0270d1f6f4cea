"""Read side of search: one module per parameter type, each turning a parsed criterion into a MongoDB
filter over the encoded values described in docs/search.md. Pure functions, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

Filter = dict[str, Any]


@dataclass(frozen=True)
class FilterContext:
    """What a filter may need beyond the criterion: the server's own base URLs and the time now (for `ap`)."""

    server_bases: tuple[str, ...]
    now: datetime


def any_of(clauses: list[Filter]) -> Filter:
    """OR of clauses; equality on one field collapses to `$in` (which indexes serve)."""
    if len(clauses) == 1:
        return clauses[0]
    fields = {next(iter(c)) for c in clauses if len(c) == 1}
    if len(fields) == 1 and all(len(c) == 1 and not isinstance(next(iter(c.values())), dict) for c in clauses):
        field = fields.pop()
        return {field: {"$in": [c[field] for c in clauses]}}
    return {"$or": clauses}


def missing(field: str, value: str) -> Filter:
    """`:missing=true` keeps resources without any value for the parameter."""
    return {field: {"$exists": value != "true"}}
