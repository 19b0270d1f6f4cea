"""vread: `GET [base]/[type]/[id]/_history/[vid]` (http.html#vread)."""

from __future__ import annotations

from fhir_server import errors
from fhir_server.context import RequestContext
from fhir_server.rest import guard
from fhir_server.rest.read import serve
from fhir_server.rest.response import FhirResponse, etag
from fhir_server.rest.subset import Subset
from fhir_server.rest.write import check_id, check_type
from fhir_server.services import Services


async def vread(services: Services, ctx: RequestContext, resource_type: str, id: str, vid: str,
                subset: Subset) -> FhirResponse:
    check_type(services, resource_type)
    check_id(id)
    if not vid.isdigit() or len(vid) > 9:
        raise errors.not_found(f"{resource_type}/{id} has no version '{vid}'")
    await guard.check_visible(services, ctx, resource_type, id, "r")
    stored = await services.store.version(resource_type, id, int(vid))
    if stored is None:
        raise errors.not_found(f"{resource_type}/{id} has no version {vid}")
    if stored.deleted:
        raise errors.gone(f"Version {vid} of {resource_type}/{id} is its deletion", {"ETag": etag(stored.version)})
    return serve(stored, ctx, subset)
