"""delete: `DELETE [base]/[type]/[id]` (http.html#delete) and conditional delete (`DELETE [type]?query`).

Deletion writes a new version (a tombstone), so history keeps the deletion and a later update re-creates
the resource with the next version number. Deleting what was never there answers with the status the
CapabilityStatement declares (`FHIR_DELETE_MISSING_STATUS`, 204 or 404); deleting twice is a no-op.
"""

from __future__ import annotations

from fhir_server import errors
from fhir_server.context import RequestContext
from fhir_server.db.store import NewVersion, StoredVersion
from fhir_server.rest import guard
from fhir_server.rest.response import FhirResponse, etag, information
from fhir_server.rest.write import build_version, check_id, check_type, commit
from fhir_server.rest.conditional import at_most_one
from fhir_server.services import Services


async def delete(services: Services, ctx: RequestContext, resource_type: str, id: str,
                 if_match: int | None) -> FhirResponse:
    check_type(services, resource_type)
    check_id(id)

    def change(current: StoredVersion | None) -> NewVersion | None:
        if current is None or current.deleted:
            return None
        return build_version(services, resource_type, id, None, current, ctx, "DELETE")

    await guard.check_existing(services, ctx, resource_type, id, "d")
    seen, new = await commit(services, resource_type, id, if_match, change)
    if seen is None:
        if services.settings.delete_missing_status == 404:
            raise errors.not_found(f"{resource_type}/{id} is not known")
        return _answer(ctx, f"{resource_type}/{id} did not exist; nothing to delete", None)
    version = new.version if new else seen.version
    message = f"Deleted {resource_type}/{id}" if new else f"{resource_type}/{id} was already deleted"
    return _answer(ctx, message, version)


async def conditional_delete(services: Services, ctx: RequestContext, resource_type: str, query: str) -> FhirResponse:
    """Deletes the single match; several matches are a 412 (the CapabilityStatement declares `single`)."""
    check_type(services, resource_type)

    async def conditionally(match: str | None) -> FhirResponse:
        if match is not None:
            return await delete(services, ctx, resource_type, match, None)
        if services.settings.delete_missing_status == 404:
            raise errors.not_found(f"No {resource_type} matches {query}")
        return _answer(ctx, f"No {resource_type} matches {query}; nothing to delete", None)

    return await at_most_one(services, ctx, resource_type, query, f"DELETE {resource_type}?{query}", conditionally)


def _answer(ctx: RequestContext, message: str, version: int | None) -> FhirResponse:
    headers = {"ETag": etag(version)} if version is not None else {}
    if ctx.prefer.return_ == "OperationOutcome":
        return FhirResponse(200, information(message), headers)
    return FhirResponse(204, None, headers)
