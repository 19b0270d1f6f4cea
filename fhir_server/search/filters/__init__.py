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


_SELECTIVE = {"pc", "ix.patient", "ix.subject", "ix.identifier", "ix.encounter"}  # usually a handful of matches


def _rank(key: str, condition: Any) -> int:
    """Most selective first: the embedded store drives a query from its first indexed predicate."""
    if key == "_id":
        return 0
    if key in _SELECTIVE:
        return 1
    if not isinstance(condition, dict):
        return 2
    if "$in" in condition:
        return 3
    if key.startswith("$") or "$elemMatch" in condition or "$not" in condition or "$nin" in condition:
        return 6
    if "$exists" in condition:
        return 5
    return 4


def all_of(clauses: list[Filter]) -> Filter:
    """AND of clauses as one flat document (`{a: …, b: …}`), not `$and: [...]`: the same meaning, but the
    embedded store only uses an index for a flat filter. Conditions on the same field are merged when
    their operators differ and kept apart in `$and` otherwise."""
    merged: dict[str, Any] = {}
    apart: list[Filter] = []
    for clause in clauses:
        for key, condition in clause.items():
            if key == "$and":
                apart.extend(condition)
            elif key not in merged:
                merged[key] = condition
            elif (isinstance(merged[key], dict) and isinstance(condition, dict) and key != "$or"
                  and all(k.startswith("$") for k in (*merged[key], *condition))
                  and not set(merged[key]) & set(condition) and "$elemMatch" not in condition):
                merged[key] = {**merged[key], **condition}
            else:
                apart.append({key: condition})
    ordered = dict(sorted(merged.items(), key=lambda item: _rank(*item)))
    if apart:
        ordered["$and"] = apart
    return ordered


def missing(field: str, value: str) -> Filter:
    """`:missing=true` keeps resources without any value for the parameter."""
    return {field: {"$exists": value != "true"}}
