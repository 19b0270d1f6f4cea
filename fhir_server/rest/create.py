"""create: `POST [base]/[type]` (http.html#create), with conditional create (`If-None-Exist`, #ccreate)."""

from __future__ import annotations

from typing import Any

from fhir_server.context import RequestContext
from fhir_server.rest import guard
from fhir_server.rest.response import FhirResponse, version_headers, written
from fhir_server.rest.conditional import at_most_one
from fhir_server.rest.write import as_stored, build_version, check_body, check_type, commit, new_id
from fhir_server.services import Services


async def create(services: Services, ctx: RequestContext, resource_type: str, body: Any,
                 if_none_exist: str | None, id: str | None = None) -> FhirResponse:
    """`id` is for transactions, which assign ids before they run so references can be rewritten."""
    check_type(services, resource_type)
    guard.require(ctx, resource_type, "c")
    resource = check_body(services, resource_type, body, None)
    if if_none_exist is None:
        return await _create(services, ctx, resource_type, resource, id)

    async def conditionally(match: str | None) -> FhirResponse:
        if match is None:
            return await _create(services, ctx, resource_type, resource, id)
        existing = await services.store.current(resource_type, match)
        assert existing is not None and existing.raw is not None
        headers = version_headers(existing, ctx.base_url, location=True)
        return FhirResponse(200, None if ctx.prefer.return_ == "minimal" else existing.raw, headers)

    return await at_most_one(services, ctx, resource_type, if_none_exist, f"If-None-Exist: {if_none_exist}",
                             conditionally)


async def _create(services: Services, ctx: RequestContext, resource_type: str, resource: dict[str, Any],
                  id: str | None) -> FhirResponse:
    id = id or new_id()
    check = guard.write_check(services, ctx, resource_type, "c")
    _, new = await commit(services, resource_type, id, None,
                          lambda current: build_version(services, resource_type, id, resource, current, ctx, "POST"),
                          fresh_id=True, check=check)
    assert new is not None
    return written(as_stored(new), 201, ctx.base_url, ctx.prefer.return_, f"Created {resource_type}/{id}")
