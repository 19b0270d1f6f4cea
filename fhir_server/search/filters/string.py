"""string parameters (search.html#string): starts-with, case- and accent-insensitive; :exact, :contains."""

from __future__ import annotations

import re

from fhir_server import errors
from fhir_server.search.filters import Filter, any_of, missing
from fhir_server.search.index.encode import PREFIX_LENGTH, norm
from fhir_server.search.parse import unescape

HIGHEST = "\U0010ffff"
MIN_CONTAINS = 3  # shorter substrings would scan and match nearly everything


def prefix_range(prefix: str) -> Filter:
    """Starts-with as a range (not a regex). On array fields wrap it in `$elemMatch`: MongoDB applies each
    bound of a bare range to any element, so `["gauteng", "pretoria"]` would match "limpopo"."""
    return {"$gte": prefix, "$lt": prefix + HIGHEST}


def to_filter(code: str, modifier: str | None, values: tuple[str, ...], narrow: str | None = None) -> Filter:
    """`narrow`: another string parameter whose values include this one's (family/given within name); its
    indexed prefix tokens select the candidates."""
    field = f"ix.{code}"
    if modifier == "missing":
        return missing(field, values[0])
    if modifier == "exact":
        return any_of([{f"ex.{code}": unescape(v)} for v in values])
    if modifier == "contains":
        clauses = []
        for value in values:
            needle = norm(unescape(value))
            if len(needle) < MIN_CONTAINS:
                raise errors.invalid(f"{code}:contains needs at least {MIN_CONTAINS} characters, not '{value}'",
                                     f"{code}:contains")
            clauses.append({field: {"$regex": re.escape(needle)}})
        return any_of(clauses)
    return any_of([starts_with(code, norm(unescape(v)), narrow) for v in values])


def starts_with(code: str, prefix: str, narrow: str | None = None) -> Filter:
    """Starts-with as an equality on the stored prefix tokens (`ixp`, exact on arrays and index-served);
    longer prefixes narrow by their first PREFIX_LENGTH characters and check the rest on one element."""
    if not prefix:
        raise errors.invalid(f"{code} needs a value with letters or digits", code)
    head = prefix[:PREFIX_LENGTH]
    clause: Filter = {f"ixp.{narrow}": head} if narrow else {}
    clause[f"ixp.{code}"] = head
    if len(prefix) > PREFIX_LENGTH:
        clause[f"ix.{code}"] = {"$elemMatch": prefix_range(prefix)}
    return clause
