"""read: `GET [base]/[type]/[id]` (http.html#read), with conditional read (#cread)."""

from __future__ import annotations

from fhir_server import errors
from fhir_server.context import RequestContext
from fhir_server.db.store import StoredVersion
from fhir_server.rest import guard
from fhir_server.rest.preconditions import Preconditions, version_from_etag
from fhir_server.rest.response import FhirResponse, etag, version_headers
from fhir_server.rest.subset import Subset
from fhir_server.rest.write import check_id, check_type
from fhir_server.services import Services


async def read(services: Services, ctx: RequestContext, resource_type: str, id: str, pre: Preconditions,
               subset: Subset) -> FhirResponse:
    check_type(services, resource_type)
    check_id(id)
    await guard.check_visible(services, ctx, resource_type, id, "r")
    stored = await services.store.current(resource_type, id)
    if stored is None:
        raise errors.not_found(f"{resource_type}/{id} is not known")
    if stored.deleted:
        raise errors.gone(f"{resource_type}/{id} was deleted", {"ETag": etag(stored.version)})
    if not_modified(stored, pre):
        return FhirResponse(304, None, version_headers(stored, ctx.base_url))
    return serve(stored, ctx, subset)


def serve(stored: StoredVersion, ctx: RequestContext, subset: Subset) -> FhirResponse:
    if subset.summary == "count":
        raise errors.invalid("_summary=count applies to searches, not to reading one resource", "_summary")
    assert stored.raw is not None
    return FhirResponse(200, subset.apply(stored.raw), version_headers(stored, ctx.base_url))


def not_modified(stored: StoredVersion, pre: Preconditions) -> bool:
    """`If-None-Match` (a version ETag or `*`) and `If-Modified-Since` (second precision) answer 304."""
    if pre.if_none_match is not None:
        if pre.if_none_match == "*":
            return True
        return any(version_from_etag(tag, "If-None-Match") == stored.version for tag in pre.if_none_match.split(","))
    if pre.if_modified_since is not None:
        return stored.last_updated.replace(microsecond=0) <= pre.if_modified_since
    return False
