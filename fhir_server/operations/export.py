"""Bulk Data `$export` (HL7 Bulk Data Access IG 2.0): kick-off at system, `Patient` and `Group/[id]`
level, status polling, cancellation, and file download. The work itself runs in `export_worker.py`.

Kick-off needs `Prefer: respond-async` and answers 202 with `Content-Location` (the status URL). Polling
answers 202 with `X-Progress` and `Retry-After` while the job runs, then 200 with the manifest; a failed
job answers 500 with an OperationOutcome. `DELETE` on the status URL cancels and removes the files.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

from fhir_server import errors, fhirjson
from fhir_server.auth import access
from fhir_server.context import RequestContext
from fhir_server.errors import FhirError, Issue
from fhir_server.rest import guard
from fhir_server.rest.response import FhirResponse
from fhir_server.rest.write import check_id, instant
from fhir_server.search.dates import parse_range
from fhir_server.search.parse import Parser
from fhir_server.services import Services

FORMATS = {"application/fhir+ndjson", "application/ndjson", "ndjson"}
KNOWN = {"_outputFormat", "_since", "_type", "_typeFilter"}
MAX_GROUP_MEMBERS = 10_000
RETRY_AFTER = "2"


def status_url(ctx: RequestContext, job_id: str) -> str:
    return ctx.url("$export-status", job_id)


async def kick_off(services: Services, ctx: RequestContext, level: str, group_id: str | None,
                   params: list[tuple[str, str]], request_url: str) -> FhirResponse:
    if not access.may_export(ctx.caller, level, services.settings.group_export_user_scopes):
        raise errors.forbidden("Bulk $export needs system/ scopes (a SMART Backend Services token)")
    if not ctx.prefer.respond_async:
        raise errors.invalid("$export runs asynchronously: send `Prefer: respond-async`")
    values: dict[str, list[str]] = {}
    for name, value in params:
        if name in ("_format", "_pretty"):
            continue
        if name not in KNOWN:
            if ctx.prefer.handling == "lenient":
                continue
            raise errors.not_supported(f"$export does not support the parameter '{name}'")
        values.setdefault(name, []).append(value)
    output_format = values.get("_outputFormat", ["application/fhir+ndjson"])[-1]
    if output_format not in FORMATS:
        raise errors.invalid(f"_outputFormat {output_format} is not supported; use application/fhir+ndjson",
                             "_outputFormat")
    types = sorted({t.strip() for v in values.get("_type", []) for t in v.split(",") if t.strip()})
    unknown = [t for t in types if t not in services.registry]
    if unknown:
        raise errors.invalid(f"_type names unknown resource types: {', '.join(unknown)}", "_type")
    readable = _readable_types(services, ctx, types)
    since = parse_range(values["_since"][-1], "_since")[0] if "_since" in values else None
    type_filters = _type_filters(services, values.get("_typeFilter", []), types)
    members: list[str] = []
    if level == "group":
        assert group_id is not None
        check_id(group_id)
        await guard.check_visible(services, ctx, "Group", group_id, "r")
        members = await _group_members(services, group_id)
    now = datetime.now(UTC)
    job_id = str(uuid.uuid4())
    await services.jobs.create({
        "_id": job_id, "status": "queued", "level": level, "group": group_id, "members": members,
        "types": types or None, "since": since, "type_filters": type_filters, "created": now,
        "transaction_time": now, "request": request_url, "base_url": ctx.base_url, "attempts": 0,
        "expires": now + timedelta(seconds=services.settings.export_retention_seconds), "output": [],
        "client_id": ctx.caller.client_id, "readable": readable,
    })
    if services.export_worker is not None:
        services.export_worker.wake.set()
    return FhirResponse(202, None, {"Content-Location": status_url(ctx, job_id)})


def _readable_types(services: Services, ctx: RequestContext, types: list[str]) -> list[str] | None:
    """The types this export may write out (None: all). An export copies whole types, so a type counts
    only if the token reads all of it: named types that it does not are a 403; unnamed ones are left out."""
    if ctx.caller.unrestricted:
        return None
    wanted = types or sorted(services.registry.types)
    readable = [t for t in wanted if access.restriction(ctx.caller, t, "r").unrestricted]
    refused = sorted(set(types) - set(readable))
    if refused:
        raise errors.forbidden(f"The access token does not allow reading all of: {', '.join(refused)}")
    return readable


def owned_job(ctx: RequestContext, job: dict[str, Any] | None) -> dict[str, Any] | None:
    """A job is visible only to the client that started it (unknown to anyone else)."""
    if job is None or ctx.caller.unrestricted or job.get("client_id") == ctx.caller.client_id:
        return job
    return None


def _type_filters(services: Services, filters: list[str], types: list[str]) -> dict[str, list[str]]:
    """`_typeFilter=Observation?code=…`: checked now (strictly) so a bad filter is a 400 at kick-off."""
    parser = Parser(services.search_registry, services.registry.types, True, 1, 1)
    out: dict[str, list[str]] = {}
    for value in (v for joined in filters for v in joined.split(",") if v):
        resource_type, mark, query = value.partition("?")
        if not mark or resource_type not in services.registry:
            raise errors.invalid(f"_typeFilter '{value}' is not Type?search", "_typeFilter")
        if types and resource_type not in types:
            raise errors.invalid(f"_typeFilter names {resource_type}, which _type leaves out", "_typeFilter")
        try:
            parser.parse(resource_type, parse_qsl(query, keep_blank_values=True))
        except FhirError as exc:
            raise errors.invalid(f"_typeFilter '{value}': {exc.issues[0].diagnostics}", "_typeFilter") from None
        out.setdefault(resource_type, []).append(query)
    return out


async def _group_members(services: Services, group_id: str) -> list[str]:
    stored = await services.store.current("Group", group_id)
    if stored is None or stored.raw is None:
        raise errors.not_found(f"Group/{group_id} is not known")
    group = fhirjson.loads_stored(stored.raw)
    members = sorted({m["entity"]["reference"] for m in group.get("member", [])
                      if isinstance(m.get("entity", {}).get("reference"), str)
                      and m["entity"]["reference"].startswith("Patient/")})
    if len(members) > MAX_GROUP_MEMBERS:
        raise errors.too_large(f"Group/{group_id} has more than {MAX_GROUP_MEMBERS} patient members")
    return members


async def status(services: Services, ctx: RequestContext, job_id: str) -> FhirResponse:
    job = owned_job(ctx, await services.jobs.get(job_id))
    if job is None or job["status"] == "cancelled":
        raise errors.not_found(f"No export job {job_id} (it may have expired or been cancelled)")
    if job["status"] in ("queued", "running"):
        return FhirResponse(202, None, {"X-Progress": job.get("progress") or job["status"], "Retry-After": RETRY_AFTER})
    if job["status"] == "failed":
        return FhirResponse(500, errors.operation_outcome(
            [Issue("exception", f"The export failed: {job.get('error_message', 'unknown error')}")]))
    base = job.get("base_url") or ctx.base_url
    manifest: dict[str, Any] = {
        "transactionTime": instant(job["transaction_time"]),
        "request": job["request"],
        "requiresAccessToken": services.settings.auth == "on",
        "output": [{"type": o["type"], "url": f"{base}/$export-file/{job_id}/{o['file']}", "count": o["count"]}
                   for o in job.get("output", [])],
        "error": [],
    }
    return FhirResponse(200, manifest, {"Expires": job["expires"].strftime("%a, %d %b %Y %H:%M:%S GMT")})


async def cancel(services: Services, ctx: RequestContext, job_id: str) -> FhirResponse:
    if owned_job(ctx, await services.jobs.get(job_id)) is None or not await services.jobs.cancel(job_id):
        raise errors.not_found(f"No export job {job_id}")
    await services.jobs.delete_files(job_id)
    if services.export_worker is not None:
        services.export_worker.wake.set()
    return FhirResponse(202, errors.operation_outcome([Issue("informational", f"Export {job_id} cancelled",
                                                             severity="information")]))
