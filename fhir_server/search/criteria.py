"""Conditional-interaction criteria (`If-None-Exist`, `PUT/DELETE [type]?query`) as store criteria.

The REST core supports the parameters conditional writes need most, `_id` and `identifier`
(`system|value`, `|value`, `system|`, `value`); any other parameter is a 400 that names it, never a
silently wider match. The full search API replaces this module's parser when it lands.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from fhir_server import errors

MAX_QUERY_LENGTH = 4096
_SUPPORTED = ("_id", "identifier")


def parse_query(query: str) -> list[tuple[str, str]]:
    if len(query) > MAX_QUERY_LENGTH:
        raise errors.invalid(f"The search query is longer than {MAX_QUERY_LENGTH} characters")
    try:
        pairs = parse_qsl(query.lstrip("?"), keep_blank_values=True, strict_parsing=False, max_num_fields=50)
    except ValueError as exc:
        raise errors.invalid(f"The search query cannot be parsed: {exc}") from None
    return [(k, v) for k, v in pairs if not k.startswith("_format") and k != "_pretty"]


def lock_key(resource_type: str, params: list[tuple[str, str]]) -> str:
    """One name for one set of criteria, whatever order the client wrote them in."""
    return resource_type + "?" + "&".join(sorted(f"{k}={v}" for k, v in params))


def to_criteria(resource_type: str, params: list[tuple[str, str]]) -> dict[str, Any]:
    """A MongoDB filter over a type's current-version collection; raises 400 for what it cannot express."""
    if not params:
        raise errors.invalid("A conditional request needs search criteria (for example identifier=system|value)")
    clauses: list[dict[str, Any]] = []
    for name, value in params:
        if name not in _SUPPORTED:
            raise errors.not_supported(
                f"Search parameter '{name}' is not supported in conditional requests yet; use "
                f"{' or '.join(_SUPPORTED)}")
        if not value:
            raise errors.invalid(f"Search parameter '{name}' has no value", name)
        options = [_clause(name, v) for v in _split_or(value)]
        clauses.append(options[0] if len(options) == 1 else {"$or": options})
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def _split_or(value: str) -> list[str]:
    parts, current, escaped = [], "", False
    for char in value:
        if escaped:
            current += char
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ",":
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return parts


def _clause(name: str, value: str) -> dict[str, Any]:
    if name == "_id":
        return {"_id": value}
    if "|" not in value:
        return {"resource.identifier.value": value}
    system, _, code = value.partition("|")
    match: dict[str, Any] = {}
    if system:
        match["system"] = system
    else:
        match["system"] = {"$exists": False}
    if code:
        match["value"] = code
    return {"resource.identifier": {"$elemMatch": match}}
