"""composite parameters (search.html#composite): `a$b` matched against one element's components together,
e.g. `code-value-quantity=http://loinc.org|8480-6$gt100`."""

from __future__ import annotations

from typing import Any

from fhir_server import errors
from fhir_server.search.filters import Filter, FilterContext, any_of, missing
from fhir_server.search.filters import date as date_filter
from fhir_server.search.filters import number as number_filter
from fhir_server.search.filters import quantity as quantity_filter
from fhir_server.search.filters import reference as reference_filter
from fhir_server.search.filters import string as string_filter
from fhir_server.search.filters import token as token_filter
from fhir_server.search.filters import uri as uri_filter
from fhir_server.search.index.encode import norm
from fhir_server.search.parse import split_unescaped, unescape


def _component(index: int, param_type: str, value: str, ctx: FilterContext, targets: tuple[str, ...]) -> dict[str, Any]:
    """The condition on component `index` of one stored composite entry, built by the component type's own
    filter on a placeholder field and then re-rooted at `c<index>`."""
    if param_type == "token":
        built = token_filter.to_filter("_", None, (value,))
    elif param_type == "string":  # starts-with on the entry's own strings (entries hold no `ixp` prefixes)
        prefix = norm(unescape(value))
        if not prefix:
            raise errors.invalid(f"a string component needs letters or digits, not '{value}'")
        built = {"ix._": {"$elemMatch": string_filter.prefix_range(prefix)}}
    elif param_type == "uri":
        built = uri_filter.to_filter("_", None, (value,))
    elif param_type == "reference":
        built = reference_filter.to_filter("_", None, (value,), targets, None, ctx)
    elif param_type == "date":
        built = date_filter.to_filter("_", None, (value,), ctx)
    elif param_type == "number":
        built = number_filter.to_filter("_", None, (value,))
    elif param_type == "quantity":
        built = quantity_filter.to_filter("_", None, (value,))
    else:
        raise errors.invalid(f"composite components of type {param_type} are not supported")
    return _reroot(built, "ix._", f"c{index}")


def _reroot(node: Any, old: str, new: str) -> Any:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == old:
                key = new
            elif key.startswith(old + "."):
                key = new + key[len(old):]
            out[key] = _reroot(value, old, new)
        return out
    if isinstance(node, list):
        return [_reroot(v, old, new) for v in node]
    return node


def to_filter(code: str, modifier: str | None, values: tuple[str, ...], component_types: list[tuple[str, tuple[str, ...]]],
              ctx: FilterContext) -> Filter:
    field = f"ix.{code}"
    if modifier == "missing":
        return missing(field, values[0])
    clauses = []
    for value in values:
        parts = split_unescaped(value, "$")
        if len(parts) != len(component_types):
            raise errors.invalid(f"{code} takes {len(component_types)} components separated by '$', not '{value}'", code)
        element: dict[str, Any] = {}
        for index, (part, (param_type, targets)) in enumerate(zip(parts, component_types, strict=True)):
            element.update(_component(index, param_type, part, ctx, targets))
        clauses.append({field: {"$elemMatch": element}})
    return any_of(clauses)
