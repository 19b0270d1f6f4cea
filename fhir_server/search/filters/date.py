"""date parameters (search.html#date): every prefix, with precision-as-range semantics over date,
dateTime, instant, Period and Timing (all stored as `{lo, hi}` ranges)."""

from __future__ import annotations

from datetime import datetime, timedelta

from fhir_server.search.dates import parse_range
from fhir_server.search.filters import Filter, FilterContext, any_of, missing
from fhir_server.search.filters.prefixes import range_filter, split_prefix


def _approximately(slo: datetime, shi: datetime, now: datetime) -> tuple[datetime, datetime]:
    """`ap`: widen the search range by 10% of its distance from now (at least a day), as the spec suggests."""
    gap = max(abs(now - slo), abs(now - shi)) * 0.1
    gap = max(gap, timedelta(days=1))
    return slo - gap, shi + gap


def to_filter(code: str, modifier: str | None, values: tuple[str, ...], ctx: FilterContext) -> Filter:
    field = f"ix.{code}"
    if modifier == "missing":
        return missing(field, values[0])
    clauses = []
    for value in values:
        prefix, text = split_prefix(value, code)
        slo, shi = parse_range(text, code)
        approx = _approximately(slo, shi, ctx.now) if prefix == "ap" else None
        clauses.append(range_filter(field, prefix, slo, shi, approx))
    return any_of(clauses)


def last_updated_filter(values: tuple[str, ...], ctx: FilterContext) -> Filter:
    """`_lastUpdated` against the stored instant `ts` (a point, so every prefix is a plain comparison)."""
    clauses = []
    for value in values:
        prefix, text = split_prefix(value, "_lastUpdated")
        slo, shi = parse_range(text, "_lastUpdated")
        if prefix == "ap":
            slo, shi = _approximately(slo, shi, ctx.now)
        condition = {"eq": {"$gte": slo, "$lt": shi}, "ap": {"$gte": slo, "$lt": shi},
                     "ne": {"$not": {"$gte": slo, "$lt": shi}}, "gt": {"$gte": shi}, "sa": {"$gte": shi},
                     "lt": {"$lt": slo}, "eb": {"$lt": slo}, "ge": {"$gte": slo}, "le": {"$lt": shi}}[prefix]
        clauses.append({"ts": condition})
    return any_of(clauses)
