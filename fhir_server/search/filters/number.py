"""number parameters (search.html#number): prefixes against the exact value `v`; `eq`/`ne`/`ap` use the
search value's implicit precision (100 matches [99.5, 100.5))."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from fhir_server import errors
from fhir_server.search.filters import Filter, any_of, missing
from fhir_server.search.filters.prefixes import split_prefix


def parse_number(text: str, name: str) -> Decimal:
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise errors.invalid(f"{name}: '{text}' is not a number", name) from None
    if not number.is_finite():
        raise errors.invalid(f"{name}: '{text}' is not a finite number", name)
    return number


def precision_range(number: Decimal) -> tuple[Decimal, Decimal]:
    half = Decimal(5).scaleb(number.as_tuple().exponent - 1)  # type: ignore[operator]
    return number - half, number + half


def value_condition(prefix: str, number: Decimal) -> dict[str, Any]:
    """The condition on an exact value for `prefix` (shared by number and quantity)."""
    lo, hi = precision_range(number)
    if prefix == "ap":
        gap = max(abs(number) * Decimal("0.1"), hi - lo)
        lo, hi = number - gap, number + gap
    return {"eq": {"$gte": lo, "$lt": hi}, "ap": {"$gte": lo, "$lte": hi}, "ne": {"$not": {"$gte": lo, "$lt": hi}},
            "gt": {"$gt": number}, "sa": {"$gt": number}, "lt": {"$lt": number}, "eb": {"$lt": number},
            "ge": {"$gte": number}, "le": {"$lte": number}}[prefix]


def to_filter(code: str, modifier: str | None, values: tuple[str, ...]) -> Filter:
    field = f"ix.{code}"
    if modifier == "missing":
        return missing(field, values[0])
    clauses: list[Filter] = []
    for value in values:
        prefix, text = split_prefix(value, code)
        condition = value_condition(prefix, parse_number(text, code))
        clauses.append(value_clause(field, prefix, condition))
    return any_of(clauses)


def value_clause(field: str, prefix: str, condition: dict[str, Any], extra: dict[str, Any] | None = None) -> Filter:
    """Apply `condition` to one element's `v` (plus `extra` element conditions such as units). Two-ended
    conditions need `$elemMatch` so both ends hold for the same element; the dotted one-ended condition
    beside it is what an index on `.v` serves."""
    extra = extra or {}
    if prefix == "ne":  # a value (in the unit, if one is named), and none equal
        # `v` leads the `$elemMatch`: the embedded store reads one that starts with `$or` as an operator
        present = {"$elemMatch": {"v": {"$exists": True}, **extra}} if extra else {"$exists": True}
        return {field: {**present, "$not": {"$elemMatch": {"v": condition["$not"], **extra}}}}
    if len(condition) == 1 and not extra:
        return {f"{field}.v": condition}
    lower = {k: v for k, v in condition.items() if k in ("$gt", "$gte")}
    clause: Filter = {field: {"$elemMatch": {"v": condition, **extra}}}
    if lower and not extra:
        clause[f"{field}.v"] = lower
    return clause
