"""token parameters (search.html#token): `code`, `system|code`, `|code`, `system|`, with :not, :text,
:of-type and :missing."""

from __future__ import annotations

from fhir_server import errors
from fhir_server.search.filters import Filter, any_of, missing
from fhir_server.search.filters.string import prefix_range
from fhir_server.search.index.encode import esc, norm
from fhir_server.search.parse import split_unescaped, unescape


def encoded(value: str) -> Filter | str:
    """The stored form a search value matches: an exact string, or a range for `system|`."""
    parts = split_unescaped(value, "|")
    if len(parts) == 1:
        return esc(unescape(parts[0]))
    if len(parts) != 2:
        raise errors.invalid(f"'{value}' is not a token (use code, system|code, |code or system|)")
    system, code = esc(unescape(parts[0])), esc(unescape(parts[1]))
    if code:
        return f"{system}|{code}"
    if not system:
        raise errors.invalid("A token value '|' names neither a system nor a code")
    return {"$gte": f"{system}|", "$lt": f"{system}}}"}


def to_filter(code: str, modifier: str | None, values: tuple[str, ...]) -> Filter:
    field = f"ix.{code}"
    if modifier == "missing":
        return missing(field, values[0])
    if modifier == "text":
        return any_of([{f"tx.{code}": {"$elemMatch": prefix_range(norm(unescape(v)))}} for v in values])
    if modifier == "of-type":
        clauses = []
        for value in values:
            parts = split_unescaped(value, "|")
            if len(parts) != 3 or not all(parts):
                raise errors.invalid(f"{code}:of-type takes system|code|value, not '{value}'", f"{code}:of-type")
            clauses.append({f"ot.{code}": "|".join(esc(unescape(p)) for p in parts)})
        return any_of(clauses)
    matches = [encoded(v) for v in values]
    if modifier == "not":
        exact = [m for m in matches if isinstance(m, str)]
        ranges = [m for m in matches if not isinstance(m, str)]
        clause: Filter = {field: {"$nin": exact}} if exact else {}
        if ranges:
            clause = {"$and": [clause, *({field: {"$not": {"$elemMatch": r}}} for r in ranges)]} if clause else \
                {"$and": [{field: {"$not": {"$elemMatch": r}}} for r in ranges]}
        return clause
    return any_of([{field: m if isinstance(m, str) else {"$elemMatch": m}} for m in matches])
