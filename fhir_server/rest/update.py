"""update: `PUT [base]/[type]/[id]` (http.html#update), update-as-create, and conditional update
(`PUT [base]/[type]?query`, #cond-update)."""

from __future__ import annotations

from typing import Any

from fhir_server import errors
from fhir_server.context import RequestContext
from fhir_server.rest import guard
from fhir_server.rest.response import FhirResponse, written
from fhir_server.rest.write import as_stored, build_version, check_body, check_id, check_type, commit, new_id
from fhir_server.rest.conditional import at_most_one
from fhir_server.services import Services


async def update(services: Services, ctx: RequestContext, resource_type: str, id: str, body: Any,
                 if_match: int | None) -> FhirResponse:
    check_type(services, resource_type)
    check_id(id)
    guard.require(ctx, resource_type, "u")
    resource = check_body(services, resource_type, body, id)
    return await replace(services, ctx, resource_type, id, resource, if_match, "PUT")


async def replace(services: Services, ctx: RequestContext, resource_type: str, id: str, resource: dict[str, Any],
                  if_match: int | None, method: str) -> FhirResponse:
    """Write `resource` as the next version of `id`: 201 if that creates it (or re-creates it after a
    delete), 200 otherwise."""
    check = guard.write_check(services, ctx, resource_type, "u")
    if check is not None:
        await guard.check_existing(services, ctx, resource_type, id, "u")
    seen, new = await commit(services, resource_type, id, if_match,
                             lambda current: build_version(services, resource_type, id, resource, current, ctx, method),
                             check=check)
    assert new is not None
    created = seen is None or seen.deleted
    verb = "Created" if created else "Updated"
    return written(as_stored(new), 201 if created else 200, ctx.base_url, ctx.prefer.return_,
                   f"{verb} {resource_type}/{id} (version {new.version})")


async def conditional_update(services: Services, ctx: RequestContext, resource_type: str, query: str, body: Any,
                             if_match: int | None) -> FhirResponse:
    check_type(services, resource_type)
    if not isinstance(body, dict):
        check_body(services, resource_type, body, None)
    body_id = body.get("id")

    async def conditionally(match: str | None) -> FhirResponse:
        if match is not None and body_id is not None and body_id != match:
            raise errors.invalid(f"The body's id '{body_id}' differs from the matched {resource_type}/{match}",
                                 f"{resource_type}.id")
        target = match or (body_id if isinstance(body_id, str) else new_id())
        check_id(target)
        resource = check_body(services, resource_type, {**body, "id": target}, target)
        return await replace(services, ctx, resource_type, target, resource, if_match, "PUT")

    return await at_most_one(services, ctx, resource_type, query, f"PUT {resource_type}?{query}", conditionally)

