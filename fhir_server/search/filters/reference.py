"""reference parameters (search.html#reference): `Type/id`, `id`, absolute URLs on this server, other
absolute URLs and canonicals as written, the `:[type]` and `:identifier` modifiers. Chains are resolved
to ids by `search/translate.py` and arrive here as `Type/id` values."""

from __future__ import annotations

from fhir_server import errors
from fhir_server.model.registry import is_valid_id
from fhir_server.search.filters import Filter, FilterContext, any_of, missing
from fhir_server.search.filters.token import encoded
from fhir_server.search.parse import unescape


def local_reference(value: str, ctx: FilterContext) -> str:
    """An absolute URL on this server -> `Type/id`; anything else unchanged."""
    for base in ctx.server_bases:
        if value.startswith(base.rstrip("/") + "/"):
            return value[len(base.rstrip("/")) + 1:]
    return value


def candidates(value: str, targets: tuple[str, ...], target_type: str | None, ctx: FilterContext) -> list[str]:
    """The stored strings a search value can match."""
    value = local_reference(unescape(value), ctx)
    if "://" in value or value.startswith("urn:"):
        return [value]
    parts = value.split("/")
    if len(parts) >= 2 and len(parts) != 3:
        resource_type, id = parts[-2], parts[-1]
        if target_type and resource_type != target_type:
            return []
        return [f"{resource_type}/{id}"]
    if len(parts) == 1:
        if not is_valid_id(value):
            raise errors.invalid(f"'{value}' is not a resource id or reference")
        types = (target_type,) if target_type else targets
        if not types:
            raise errors.invalid(f"'{value}' needs a resource type (Type/{value}) here")
        return [f"{t}/{value}" for t in types]
    raise errors.invalid(f"'{value}' is not a reference")


def to_filter(code: str, modifier: str | None, values: tuple[str, ...], targets: tuple[str, ...],
              target_type: str | None, ctx: FilterContext) -> Filter:
    field = f"ix.{code}"
    if modifier == "missing":
        return missing(field, values[0])
    if modifier == "identifier":
        return any_of([{f"ri.{code}": encoded(v)} for v in values])
    strings = sorted({c for v in values for c in candidates(v, targets, target_type, ctx)})
    if not strings:
        return {"_id": {"$in": []}}  # a value of another type than the modifier names: nothing matches
    return {field: strings[0]} if len(strings) == 1 else {field: {"$in": strings}}
