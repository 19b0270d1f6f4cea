"""Search prefixes (search.html#prefix) over ranges: each resource value is a range [lo, hi) and so is the
search value [slo, shi) (its implicit precision). The table says which ranges match each prefix."""

from __future__ import annotations

from typing import Any

from fhir_server import errors
from fhir_server.search.filters import Filter
from fhir_server.search.parse import PREFIXES


def split_prefix(value: str, name: str) -> tuple[str, str]:
    """`ge2024` -> ("ge", "2024"); a value without a prefix means `eq`."""
    head = value[:2]
    if head.isalpha() and len(value) > 2:
        if head not in PREFIXES:
            raise errors.invalid(f"{name}: '{head}' is not a search prefix (use {', '.join(PREFIXES)})", name)
        return head, value[2:]
    return "eq", value


def range_filter(field: str, prefix: str, slo: Any, shi: Any, approx: tuple[Any, Any] | None = None) -> Filter:
    """Match elements `{lo, hi}` under `field` against the search range for `prefix`.

    Conditions that need both ends of the same element use `$elemMatch`, together with a one-ended
    condition on `field.lo` / `field.hi` that an index can serve."""
    lo, hi = f"{field}.lo", f"{field}.hi"
    if prefix == "eq":  # the resource range lies within the search range
        return {lo: {"$gte": slo, "$lt": shi}, field: {"$elemMatch": {"lo": {"$gte": slo}, "hi": {"$lte": shi}}}}
    if prefix == "ne":  # a value, and none within the search range (no value is not "not equal")
        return {field: {"$exists": True, "$not": {"$elemMatch": {"lo": {"$gte": slo}, "hi": {"$lte": shi}}}}}
    if prefix == "gt":  # some of the resource range lies above the search range
        return {hi: {"$gt": shi}}
    if prefix == "lt":
        return {lo: {"$lt": slo}}
    if prefix == "ge":  # above it, or within it; "some element does A or B" is "some does A or some does B"
        return {"$or": [{hi: {"$gt": shi}}, {lo: {"$gte": slo}}]}
    if prefix == "le":
        return {"$or": [{lo: {"$lt": slo}}, {hi: {"$lte": shi}}]}
    if prefix == "sa":  # starts after the search range ends
        return {lo: {"$gte": shi}}
    if prefix == "eb":  # ends before the search range starts
        return {hi: {"$lte": slo}}
    if prefix == "ap":
        assert approx is not None
        alo, ahi = approx
        return {lo: {"$lt": ahi}, field: {"$elemMatch": {"lo": {"$lt": ahi}, "hi": {"$gt": alo}}}}
    raise errors.invalid(f"unknown prefix {prefix}")
