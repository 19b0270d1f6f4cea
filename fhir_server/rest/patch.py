"""patch: `PATCH [base]/[type]/[id]` with JSON Patch (http.html#patch, RFC 6902).

The patch applies to the stored JSON (decimals exact) and the result is validated exactly like an update;
a patch that cannot apply (a failed `test`, a missing path) is a 422, a malformed patch document a 400.
"""

from __future__ import annotations

from typing import Any

import jsonpatch
import jsonpointer

from fhir_server import errors, fhirjson
from fhir_server.context import RequestContext
from fhir_server.db.store import NewVersion, StoredVersion
from fhir_server.rest import guard
from fhir_server.rest.response import FhirResponse, written
from fhir_server.rest.write import as_stored, build_version, check_body, check_id, check_type, commit
from fhir_server.services import Services

MAX_OPERATIONS = 1000
_OPS = {"add", "remove", "replace", "move", "copy", "test"}


def _check_patch(document: Any) -> list[dict[str, Any]]:
    if not isinstance(document, list):
        raise errors.invalid("A JSON Patch body is a JSON array of operations")
    if len(document) > MAX_OPERATIONS:
        raise errors.too_large(f"The patch has {len(document)} operations; at most {MAX_OPERATIONS} are allowed")
    for index, op in enumerate(document):
        if not isinstance(op, dict) or op.get("op") not in _OPS or not isinstance(op.get("path"), str):
            raise errors.invalid(f"Patch operation {index} needs an 'op' ({', '.join(sorted(_OPS))}) and a 'path'")
    return document


async def patch(services: Services, ctx: RequestContext, resource_type: str, id: str, document: Any,
                if_match: int | None) -> FhirResponse:
    check_type(services, resource_type)
    check_id(id)
    operations = _check_patch(document)

    def change(current: StoredVersion | None) -> NewVersion:
        if current is None:
            raise errors.not_found(f"{resource_type}/{id} is not known")
        if current.raw is None:
            raise errors.gone(f"{resource_type}/{id} was deleted")
        patched = _apply(fhirjson.loads_stored(current.raw), operations)
        resource = check_body(services, resource_type, patched, id)
        return build_version(services, resource_type, id, resource, current, ctx, "PATCH")

    check = guard.write_check(services, ctx, resource_type, "u")
    if check is not None:
        await guard.check_existing(services, ctx, resource_type, id, "u")
    _, new = await commit(services, resource_type, id, if_match, change, check=check)
    assert new is not None
    return written(as_stored(new), 200, ctx.base_url, ctx.prefer.return_,
                   f"Patched {resource_type}/{id} (version {new.version})")


def _apply(resource: dict[str, Any], operations: list[dict[str, Any]]) -> Any:
    try:
        return jsonpatch.JsonPatch(operations).apply(resource)
    except jsonpatch.JsonPatchTestFailed as exc:
        raise errors.unprocessable(f"A patch test failed: {exc}") from None
    except (jsonpatch.JsonPatchConflict, jsonpointer.JsonPointerException) as exc:
        raise errors.unprocessable(f"The patch cannot be applied to the current version: {exc}") from None
    except jsonpatch.JsonPatchException as exc:
        raise errors.invalid(f"The patch is malformed: {exc}") from None
