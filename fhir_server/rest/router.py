"""The FastAPI adapter: HTTP in, interaction call, HTTP out. The only module that routes FHIR requests.

Each route parses what HTTP carries (headers, query, body) into plain values, builds the
`RequestContext`, calls one interaction function and renders its `FhirResponse`.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from urllib.parse import parse_qsl
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse

from fhir_server import errors, fhirjson
from fhir_server.auth import bearer, urls
from fhir_server.context import Caller, RequestContext
from fhir_server.operations import everything, export, reindex
from fhir_server.rest import bundle, create, delete, history, patch, read, search, update, vread
from fhir_server.rest.negotiate import JSON_PATCH, check_body_type, is_pretty, response_type
from fhir_server.rest.preconditions import parse_preconditions, parse_prefer
from fhir_server.rest.response import FhirResponse
from fhir_server.rest.subset import parse_subset
from fhir_server.services import Services

router = APIRouter()


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


base_url = urls.fhir_base  # one definition of the FHIR base for the API, `aud` and discovery


async def context(request: Request, public: bool = False) -> RequestContext:
    """The request's context; unless `public` or auth is off, the caller comes from its Bearer token
    (401 without a valid one)."""
    services = services_of(request)
    now = datetime.now(UTC)
    base = base_url(request)
    caller = Caller()
    if services.settings.auth == "on" and not public:
        caller = await bearer.authenticate(services.auth, request.headers.get("authorization"), now, base)
    return RequestContext(
        request_id=request.headers.get("x-request-id") or str(uuid.uuid4()),
        base_url=base,
        now=now,
        prefer=parse_prefer(request.headers.get("prefer")),
        pretty=is_pretty(request.query_params.get("_pretty")),
        caller=caller,
    )


def render(request: Request, ctx: RequestContext, result: FhirResponse) -> Response:
    media = response_type(request.query_params.get("_format"), request.headers.get("accept"))
    body = result.render(ctx.pretty)
    headers = dict(result.headers)
    headers["X-Request-Id"] = ctx.request_id
    if result.body is None:
        return Response(status_code=result.status, headers=headers)
    return Response(body, status_code=result.status, headers=headers, media_type=f"{media}; charset=utf-8")


async def read_body(request: Request, allowed: set[str] | None = None) -> Any:
    """The parsed JSON body, refused early when it is over the size limit or not JSON."""
    settings = services_of(request).settings
    check_body_type(request.headers.get("content-type"), allowed)
    return fhirjson.parse(await body_bytes(request, settings.max_body_bytes), settings.max_json_depth)


async def body_bytes(request: Request, limit: int) -> bytes:
    """The whole body, refused (413) as soon as it is known to be over `limit`, by its declared length
    or while it streams in; an empty body is a 400."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise errors.too_large(f"The body is {declared} bytes; at most {limit} are accepted")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise errors.too_large(f"The body is over the {limit}-byte limit")
        chunks.append(chunk)
    if size == 0:
        raise errors.invalid("The request has no body")
    return b"".join(chunks)


def preconditions(request: Request) -> Any:
    h = request.headers
    return parse_preconditions(h.get("if-match"), h.get("if-none-match"), h.get("if-modified-since"),
                               h.get("if-none-exist"))


def subset(request: Request) -> Any:
    q = request.query_params
    return parse_subset(q.get("_summary"), q.get("_elements"))


def negotiate_first(request: Request) -> None:
    """Refuse an unacceptable `Accept`/`_format` before doing any work (and before any write)."""
    response_type(request.query_params.get("_format"), request.headers.get("accept"))


def query_string(request: Request) -> str:
    return request.url.query


@router.get("/metadata")
async def get_metadata(request: Request) -> Response:
    negotiate_first(request)
    ctx = await context(request, public=True)
    return render(request, ctx, FhirResponse(200, request.app.state.capability_statement(ctx.base_url)))


MAX_FORM_BYTES = 64 * 1024


async def search_params(request: Request) -> list[tuple[str, str]]:
    """Query parameters, plus a form body for `POST …/_search` (search.html#search)."""
    params = list(request.query_params.multi_items())
    if request.method == "POST":
        check_body_type(request.headers.get("content-type"), {"application/x-www-form-urlencoded"})
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM_BYTES:
                raise errors.too_large(f"A search form is limited to {MAX_FORM_BYTES} bytes")
        params += parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=200)
    return params


@router.get("/$export")
async def get_system_export(request: Request) -> Response:
    return await _export(request, "system", None)


@router.get("/Patient/$export")
async def get_patient_export(request: Request) -> Response:
    return await _export(request, "patient", None)


@router.get("/Group/{id}/$export")
async def get_group_export(request: Request, id: str) -> Response:
    return await _export(request, "group", id)


async def _export(request: Request, level: str, group_id: str | None) -> Response:
    negotiate_first(request)
    ctx = await context(request)
    params = list(request.query_params.multi_items())
    result = await export.kick_off(services_of(request), ctx, level, group_id, params, str(request.url))
    return render(request, ctx, result)


@router.get("/$export-status/{job_id}")
async def get_export_status(request: Request, job_id: str) -> Response:
    ctx = await context(request)
    return render(request, ctx, await export.status(services_of(request), ctx, job_id))


@router.delete("/$export-status/{job_id}")
async def delete_export(request: Request, job_id: str) -> Response:
    ctx = await context(request)
    return render(request, ctx, await export.cancel(services_of(request), ctx, job_id))


@router.get("/$export-file/{job_id}/{file_id}")
async def get_export_file(request: Request, job_id: str, file_id: str) -> Response:
    """Streams one NDJSON file out of GridFS, a chunk at a time."""
    ctx = await context(request)
    if not ObjectId.is_valid(file_id) or export.owned_job(ctx, await services_of(request).jobs.get(job_id)) is None:
        raise errors.not_found("No such export file")
    stream = await services_of(request).jobs.open_file(job_id, ObjectId(file_id))
    if stream is None:
        raise errors.not_found("No such export file (the export may have expired)")

    async def chunks() -> AsyncIterator[bytes]:
        while chunk := await stream.readchunk():
            yield chunk

    return StreamingResponse(chunks(), media_type="application/fhir+ndjson",
                             headers={"Content-Length": str(stream.length)})


@router.post("")
@router.post("/")
async def post_bundle(request: Request) -> Response:
    negotiate_first(request)
    ctx = await context(request)
    return render(request, ctx, await bundle.process(services_of(request), ctx, await read_body(request)))


@router.get("")
@router.get("/")
async def get_system_search(request: Request) -> Response:
    negotiate_first(request)
    ctx = await context(request)
    return render(request, ctx, await search.search_system(services_of(request), ctx, await search_params(request)))


@router.post("/_search")
async def post_system_search(request: Request) -> Response:
    negotiate_first(request)
    ctx = await context(request)
    return render(request, ctx, await search.search_system(services_of(request), ctx, await search_params(request)))


@router.post("/$reindex")
async def post_system_reindex(request: Request) -> Response:
    negotiate_first(request)
    ctx = await context(request)
    return render(request, ctx, await reindex.reindex(services_of(request), ctx, None))


@router.post("/{resource_type}/$reindex")
async def post_type_reindex(request: Request, resource_type: str) -> Response:
    negotiate_first(request)
    ctx = await context(request)
    return render(request, ctx, await reindex.reindex(services_of(request), ctx, resource_type))


@router.get("/Patient/{id}/$everything")
async def get_patient_everything(request: Request, id: str) -> Response:
    negotiate_first(request)
    ctx = await context(request)
    params = list(request.query_params.multi_items())
    return render(request, ctx, await everything.everything(services_of(request), ctx, "Patient", id, params))


@router.get("/Encounter/{id}/$everything")
async def get_encounter_everything(request: Request, id: str) -> Response:
    negotiate_first(request)
    ctx = await context(request)
    params = list(request.query_params.multi_items())
    return render(request, ctx, await everything.everything(services_of(request), ctx, "Encounter", id, params))


@router.get("/_history")
async def get_system_history(request: Request) -> Response:
    negotiate_first(request)
    ctx = await context(request)
    params = list(request.query_params.multi_items())
    return render(request, ctx, await history.history(services_of(request), ctx, None, None, params))


@router.get("/{resource_type}")
async def get_type_search(request: Request, resource_type: str) -> Response:
    negotiate_first(request)
    ctx = await context(request)
    params = await search_params(request)
    return render(request, ctx, await search.search_type(services_of(request), ctx, resource_type, params))


@router.post("/{resource_type}/_search")
async def post_type_search(request: Request, resource_type: str) -> Response:
    negotiate_first(request)
    ctx = await context(request)
    params = await search_params(request)
    return render(request, ctx, await search.search_type(services_of(request), ctx, resource_type, params))


@router.get("/{resource_type}/_history")
async def get_type_history(request: Request, resource_type: str) -> Response:
    negotiate_first(request)
    ctx = await context(request)
    params = list(request.query_params.multi_items())
    return render(request, ctx, await history.history(services_of(request), ctx, resource_type, None, params))


@router.get("/{resource_type}/{id}/_history")
async def get_instance_history(request: Request, resource_type: str, id: str) -> Response:
    negotiate_first(request)
    ctx = await context(request)
    params = list(request.query_params.multi_items())
    return render(request, ctx, await history.history(services_of(request), ctx, resource_type, id, params))


@router.get("/{resource_type}/{id}/_history/{vid}")
async def get_version(request: Request, resource_type: str, id: str, vid: str) -> Response:
    negotiate_first(request)
    ctx = await context(request)
    return render(request, ctx, await vread.vread(services_of(request), ctx, resource_type, id, vid, subset(request)))


@router.get("/{compartment}/{id}/{resource_type}")
async def get_compartment_search(request: Request, compartment: str, id: str, resource_type: str) -> Response:
    negotiate_first(request)
    ctx = await context(request)
    params = await search_params(request)
    result = await search.search_compartment(services_of(request), ctx, compartment, id, resource_type, params)
    return render(request, ctx, result)


@router.get("/{resource_type}/{id}")
async def get_resource(request: Request, resource_type: str, id: str) -> Response:
    negotiate_first(request)
    ctx = await context(request)
    result = await read.read(services_of(request), ctx, resource_type, id, preconditions(request), subset(request))
    return render(request, ctx, result)


@router.post("/{resource_type}")
async def post_resource(request: Request, resource_type: str) -> Response:
    negotiate_first(request)
    ctx = await context(request)
    body = await read_body(request)
    result = await create.create(services_of(request), ctx, resource_type, body,
                                 request.headers.get("if-none-exist") or None)
    return render(request, ctx, result)


@router.put("/{resource_type}/{id}")
async def put_resource(request: Request, resource_type: str, id: str) -> Response:
    negotiate_first(request)
    ctx = await context(request)
    pre = preconditions(request)
    body = await read_body(request)
    return render(request, ctx, await update.update(services_of(request), ctx, resource_type, id, body, pre.if_match))


@router.put("/{resource_type}")
async def put_conditional(request: Request, resource_type: str) -> Response:
    negotiate_first(request)
    ctx = await context(request)
    pre = preconditions(request)
    body = await read_body(request)
    result = await update.conditional_update(services_of(request), ctx, resource_type, query_string(request), body,
                                             pre.if_match)
    return render(request, ctx, result)


@router.patch("/{resource_type}/{id}")
async def patch_resource(request: Request, resource_type: str, id: str) -> Response:
    negotiate_first(request)
    ctx = await context(request)
    pre = preconditions(request)
    document = await read_body(request, {JSON_PATCH})
    return render(request, ctx, await patch.patch(services_of(request), ctx, resource_type, id, document, pre.if_match))


@router.delete("/{resource_type}/{id}")
async def delete_resource(request: Request, resource_type: str, id: str) -> Response:
    negotiate_first(request)
    ctx = await context(request)
    pre = preconditions(request)
    return render(request, ctx, await delete.delete(services_of(request), ctx, resource_type, id, pre.if_match))


@router.delete("/{resource_type}")
async def delete_conditional(request: Request, resource_type: str) -> Response:
    negotiate_first(request)
    ctx = await context(request)
    result = await delete.conditional_delete(services_of(request), ctx, resource_type, query_string(request))
    return render(request, ctx, result)
