"""uri parameters (search.html#uri): exact match, :below (starts with), :above (is a prefix of the value)."""

from __future__ import annotations

from fhir_server.search.filters import Filter, any_of, missing
from fhir_server.search.filters.string import prefix_range
from fhir_server.search.parse import unescape


def _ancestors(uri: str) -> list[str]:
    """`http://x/a/b` -> itself and each shorter path (`http://x/a`, `http://x`)."""
    out = [uri]
    head = uri
    while "/" in head.rstrip("/").split("://", 1)[-1]:
        head = head.rstrip("/").rsplit("/", 1)[0]
        out.append(head)
    return out


def to_filter(code: str, modifier: str | None, values: tuple[str, ...]) -> Filter:
    field = f"ix.{code}"
    if modifier == "missing":
        return missing(field, values[0])
    uris = [unescape(v) for v in values]
    if modifier == "below":
        return any_of([{field: {"$elemMatch": prefix_range(u)}} for u in uris])
    if modifier == "above":
        return {field: {"$in": sorted({a for u in uris for a in _ancestors(u)})}}
    return any_of([{field: u} for u in uris])
