"""quantity parameters (search.html#quantity): `[prefix]number|system|code`, `number||code`, `number`.
Units that convert in UCUM (g and kg, mg/dL and g/L…) are compared in canonical base units."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from fhir_server import errors
from fhir_server.search.filters import Filter, any_of, missing
from fhir_server.search.filters.number import parse_number, value_clause, value_condition
from fhir_server.search.filters.prefixes import split_prefix
from fhir_server.search.index.encode import esc
from fhir_server.search.parse import split_unescaped, unescape
from fhir_server.search.ucum import canonical

UCUM = "http://unitsofmeasure.org"


def _scaled(condition: dict[str, Any], factor: Decimal) -> dict[str, Any]:
    return {op: _scaled(v, factor) if isinstance(v, dict) else v * factor for op, v in condition.items()}


def to_filter(code: str, modifier: str | None, values: tuple[str, ...]) -> Filter:
    field = f"ix.{code}"
    if modifier == "missing":
        return missing(field, values[0])
    clauses: list[Filter] = []
    for value in values:
        parts = split_unescaped(value, "|")
        if len(parts) not in (1, 3):
            raise errors.invalid(f"{code}: '{value}' is not number, number|system|code or number||code", code)
        prefix, text = split_prefix(parts[0], code)
        number = parse_number(text, code)
        if len(parts) == 1:
            clauses.append(value_clause(field, prefix, value_condition(prefix, number)))
            continue
        system, unit = unescape(parts[1]), unescape(parts[2])
        if not unit:
            raise errors.invalid(f"{code}: '{value}' names a system but no unit code", code)
        converted = canonical(number, unit) if system == UCUM and number != 0 else None
        if converted is not None:
            value_cv, unit_cu = converted
            # the search value's precision is in the unit the client wrote: scale the whole condition
            condition = _scaled(value_condition(prefix, number), value_cv / number)
            element = {"cv": condition if prefix != "ne" else condition["$not"], "cu": unit_cu}
            clauses.append({field: {"$elemMatch": {"cu": unit_cu}, "$not": {"$elemMatch": element}}}
                           if prefix == "ne" else {field: {"$elemMatch": element}})
            continue
        extra: dict[str, object] = {"s": f"{esc(system)}|{esc(unit)}"} if system else \
            {"$or": [{"c": esc(unit)}, {"u": unit}]}
        clauses.append(value_clause(field, prefix, value_condition(prefix, number), extra))
    return any_of(clauses)
