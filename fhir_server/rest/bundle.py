"""batch and transaction: `POST [base]` with a Bundle (http.html#transaction).

Each entry is turned into the same interaction call the router would make (create, update, patch,
delete, read, vread, search) with the same request context. A transaction runs as one MongoDB
transaction in the spec's order (DELETE, POST, PUT/PATCH, GET): ids are assigned first, `urn:uuid:`/
`urn:oid:` fullUrls and conditional references (`Patient?identifier=…`) are rewritten everywhere in the
Bundle, and any failure rolls everything back and answers with an OperationOutcome naming the entry.
Batch entries succeed or fail on their own.
"""

from __future__ import annotations

import base64
import binascii
import copy
from dataclasses import dataclass, replace
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson

from fhir_server import errors, fhirjson
from fhir_server.context import RequestContext
from fhir_server.errors import FhirError, Issue
from fhir_server.rest import create, delete, patch, read, search, update, vread
from fhir_server.rest.conditional import matching_ids, parse_query
from fhir_server.rest.preconditions import Preconditions, parse_preconditions
from fhir_server.rest.response import FhirResponse
from fhir_server.rest.subset import Subset
from fhir_server.rest.write import check_id, instant, new_id
from fhir_server.search.dates import parse_range
from fhir_server.services import Services

ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}


@dataclass
class EntryRequest:
    index: int
    method: str
    resource_type: str | None
    id: str | None
    vid: str | None
    query: str
    full_url: str | None
    resource: Any
    request: dict[str, Any]

    @property
    def where(self) -> str:
        return f"Bundle.entry[{self.index}]"


def _fail(index: int, diagnostics: str, status: int = 400) -> FhirError:
    return FhirError(status, [Issue("invalid", f"Bundle.entry[{index}]: {diagnostics}",
                                    expression=(f"Bundle.entry[{index}]",))])


def _parse_entry(services: Services, ctx: RequestContext, index: int, entry: Any) -> EntryRequest:
    if not isinstance(entry, dict):
        raise _fail(index, "an entry must be a JSON object")
    request = entry.get("request")
    if not isinstance(request, dict) or not isinstance(request.get("method"), str) or \
            not isinstance(request.get("url"), str):
        raise _fail(index, "request.method and request.url are required")
    method = request["method"].upper()
    if method not in ORDER:
        raise _fail(index, f"request.method {method} is not supported")
    url = request["url"]
    if url.startswith(ctx.base_url + "/"):
        url = url[len(ctx.base_url) + 1:]
    split = urlsplit(url)
    parts = [p for p in split.path.strip("/").split("/") if p]
    if split.scheme or split.netloc:
        # an absolute URL elsewhere (e.g. a canonical `http://hl7.org/fhir/us/sdc/Questionnaire/54127-6`):
        # its trailing `Type/id` names the resource here
        known = [i for i, p in enumerate(parts) if p in services.registry]
        if not known or len(parts) - known[-1] > 2:
            raise _fail(index, f"request.url {url} is neither relative nor a [base]/Type[/id] URL")
        parts = parts[known[-1]:]
    resource_type = parts[0] if parts else None
    if resource_type is not None and resource_type not in services.registry:
        raise _fail(index, f"unknown resource type '{resource_type}'", 404)
    id = parts[1] if len(parts) > 1 else None
    vid = parts[3] if len(parts) == 4 and parts[2] == "_history" else None
    if len(parts) > 4 or (len(parts) in (3, 4) and parts[2] != "_history"):
        raise _fail(index, f"request.url {url} is not a FHIR interaction this server supports in Bundles")
    if id is not None and id != "_history":
        check_id(id)
    full_url = entry.get("fullUrl") if isinstance(entry.get("fullUrl"), str) else None
    return EntryRequest(index, method, resource_type, id, vid, split.query, full_url, entry.get("resource"), request)


def _walk_references(node: Any, rewrite: dict[str, str]) -> None:
    """Replace every `reference` (in extensions and contained resources too) found in `rewrite`."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "reference" and isinstance(value, str) and value in rewrite:
                node[key] = rewrite[value]
            elif isinstance(value, (dict, list)):
                _walk_references(value, rewrite)
    elif isinstance(node, list):
        for item in node:
            if isinstance(item, (dict, list)):
                _walk_references(item, rewrite)


def _conditional_references(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "reference" and isinstance(value, str) and value.partition("?")[0].isalpha() and "?" in value:
                found.add(value)  # `Type?criteria`: a conditional reference
            elif isinstance(value, (dict, list)):
                _conditional_references(value, found)
    elif isinstance(node, list):
        for item in node:
            _conditional_references(item, found)


def _patch_document(entry: EntryRequest) -> Any:
    resource = entry.resource
    if isinstance(resource, dict) and resource.get("resourceType") == "Binary":
        try:
            return fhirjson.parse(base64.b64decode(resource.get("data", ""), validate=True), 64)
        except (binascii.Error, ValueError):
            raise _fail(entry.index, "the Binary of a PATCH entry must hold a base64 JSON Patch") from None
    raise _fail(entry.index, "a PATCH entry's resource must be a Binary holding a JSON Patch "
                             "(contentType application/json-patch+json)")


def _entry_preconditions(entry: EntryRequest) -> Preconditions:
    """Bundle.entry.request carries the HTTP headers as elements; `ifModifiedSince` is a FHIR instant."""
    r = entry.request
    pre = parse_preconditions(r.get("ifMatch"), r.get("ifNoneMatch"), None, _criteria(r.get("ifNoneExist")))
    since = r.get("ifModifiedSince")
    if isinstance(since, str):
        pre = replace(pre, if_modified_since=parse_range(since, "ifModifiedSince")[0])
    return pre


def _criteria(value: Any) -> str | None:
    """`ifNoneExist` is a query string; some senders prefix it with `Type?`."""
    if not isinstance(value, str) or not value:
        return None
    head, mark, rest = value.partition("?")
    return rest if mark and head.isalpha() else value


async def _execute(services: Services, ctx: RequestContext, entry: EntryRequest, assigned: str | None,
                   in_transaction: bool) -> FhirResponse:
    """One entry, as the router would run it. `assigned` is the id a transaction chose for a POST."""
    t, pre = entry.resource_type, _entry_preconditions(entry)
    if entry.method in ("GET", "HEAD"):
        if t is None:
            return await search.search_system(services, ctx, parse_qsl(entry.query, keep_blank_values=True))
        if entry.id is None:
            return await search.search_type(services, ctx, t, parse_qsl(entry.query, keep_blank_values=True))
        if entry.vid is not None:
            return await vread.vread(services, ctx, t, entry.id, entry.vid, Subset())
        return await read.read(services, ctx, t, entry.id, pre, Subset())
    if t is None:
        raise _fail(entry.index, f"{entry.method} needs a resource type in request.url")
    if entry.method == "POST":
        if entry.id is not None:
            raise _fail(entry.index, "POST goes to [type], not [type]/[id]")
        if_none_exist = None if in_transaction else pre.if_none_exist
        return await create.create(services, ctx, t, entry.resource, if_none_exist, id=assigned)
    if entry.method == "PUT":
        if entry.id is None:
            if assigned is not None:
                body = {**entry.resource, "id": assigned} if isinstance(entry.resource, dict) else entry.resource
                return await update.update(services, ctx, t, assigned, body, pre.if_match)
            return await update.conditional_update(services, ctx, t, entry.query, entry.resource, pre.if_match)
        return await update.update(services, ctx, t, entry.id, entry.resource, pre.if_match)
    if entry.method == "PATCH":
        if entry.id is None:
            raise _fail(entry.index, "PATCH needs [type]/[id] in request.url")
        return await patch.patch(services, ctx, t, entry.id, _patch_document(entry), pre.if_match)
    if entry.id is None:
        return await delete.conditional_delete(services, ctx, t, entry.query)
    return await delete.delete(services, ctx, t, entry.id, pre.if_match)


def _response_entry(result: FhirResponse, include_resource: bool) -> dict[str, Any]:
    response: dict[str, Any] = {"status": f"{result.status} {HTTPStatus(result.status).phrase}"}
    if "Location" in result.headers:
        response["location"] = result.headers["Location"]
    if "ETag" in result.headers:
        response["etag"] = result.headers["ETag"]
    if "Last-Modified" in result.headers:
        response["lastModified"] = instant(parsedate_to_datetime(result.headers["Last-Modified"]))
    entry: dict[str, Any] = {}
    if result.body is not None and include_resource:
        entry["resource"] = orjson.Fragment(result.body) if isinstance(result.body, bytes) else result.body
    if isinstance(result.body, dict) and result.body.get("resourceType") == "OperationOutcome" and result.status >= 400:
        response["outcome"] = result.body
    entry["response"] = response
    return entry


def _id_of(result: FhirResponse) -> str | None:
    location = result.headers.get("Location", "")
    parts = location.split("/")
    return parts[-3] if len(parts) >= 3 and parts[-2] == "_history" else None


async def process(services: Services, ctx: RequestContext, bundle: Any) -> FhirResponse:
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise errors.invalid("POST [base] takes a Bundle of type batch or transaction")
    kind = bundle.get("type")
    if kind not in ("batch", "transaction"):
        raise errors.invalid(f"Bundle.type must be batch or transaction, not {kind!r}", "Bundle.type")
    raw_entries = bundle.get("entry") or []
    if not isinstance(raw_entries, list):
        raise errors.invalid("Bundle.entry must be a list", "Bundle.entry")
    limit = services.settings.max_bundle_entries
    if len(raw_entries) > limit:
        raise errors.too_large(f"The Bundle has {len(raw_entries)} entries; at most {limit} are accepted")
    if kind == "batch":
        return await _batch(services, ctx, raw_entries)
    return await _transaction(services, ctx, raw_entries)


async def _batch(services: Services, ctx: RequestContext, raw_entries: list[Any]) -> FhirResponse:
    out = []
    include = ctx.prefer.return_ != "minimal"
    for index, raw in enumerate(raw_entries):
        try:
            entry = _parse_entry(services, ctx, index, raw)
            if entry.resource_type:
                await services.store.prepare(entry.resource_type)
            resource = copy.deepcopy(entry.resource)
            refs: set[str] = set()
            _conditional_references(resource, refs)
            if refs:
                entry.resource = resource
                _walk_references(resource, await _resolve_conditional_refs(services, ctx, entry, refs))
            result = await _execute(services, ctx, entry, None, in_transaction=False)
            out.append(_response_entry(result, include or entry.method == "GET"))
        except FhirError as exc:
            out.append(_response_entry(FhirResponse(exc.status, exc.outcome()), True))
    return FhirResponse(200, {"resourceType": "Bundle", "type": "batch-response", "entry": out})


async def _resolve_conditional_refs(services: Services, ctx: RequestContext, entry: EntryRequest,
                                    refs: set[str]) -> dict[str, str]:
    resolved = {}
    for ref in sorted(refs):
        resource_type, _, query = ref.partition("?")
        if resource_type not in services.registry:
            raise _fail(entry.index, f"conditional reference {ref}: unknown resource type")
        ids = await matching_ids(services, ctx, resource_type, parse_query(query))
        if len(ids) != 1:
            found = "no" if not ids else "more than one"
            raise _fail(entry.index, f"conditional reference {ref} matches {found} {resource_type}", 412)
        resolved[ref] = f"{resource_type}/{ids[0]}"
    return resolved


async def _transaction(services: Services, ctx: RequestContext, raw_entries: list[Any]) -> FhirResponse:
    entries = [_parse_entry(services, ctx, i, e) for i, e in enumerate(raw_entries)]
    full_urls = [e.full_url for e in entries if e.full_url]
    if len(full_urls) != len(set(full_urls)):
        raise errors.invalid("Two entries of the transaction share a fullUrl", "Bundle.entry.fullUrl")
    for resource_type in sorted({e.resource_type for e in entries if e.resource_type}):
        await services.store.prepare(resource_type)

    async def work() -> list[dict[str, Any]]:
        for entry, raw in zip(entries, raw_entries, strict=True):
            entry.resource = copy.deepcopy(raw.get("resource"))
        assigned, existing, rewrite = await _assign_ids(services, ctx, entries)
        conditional: set[str] = set()
        for entry in entries:
            _conditional_references(entry.resource, conditional)
        for ref in sorted(conditional - set(rewrite)):
            rewrite.update(await _resolve_conditional_refs(services, ctx, entries[0], {ref}))
        for entry in entries:
            _walk_references(entry.resource, rewrite)
        results: list[dict[str, Any] | None] = [None] * len(entries)
        include = ctx.prefer.return_ == "representation"
        for entry in sorted(entries, key=lambda e: (ORDER[e.method], e.index)):
            if entry.index in existing:
                results[entry.index] = _response_entry(existing[entry.index], include)
                continue
            try:
                result = await _execute(services, ctx, entry, assigned.get(entry.index), in_transaction=True)
            except FhirError as exc:
                issue = exc.issues[0] if exc.issues else Issue("exception", "failed")
                raise FhirError(exc.status, [Issue(issue.code, f"{entry.where} ({entry.method} "
                                                   f"{entry.request.get('url')}): {issue.diagnostics}",
                                                   expression=(entry.where, *issue.expression))]) from None
            results[entry.index] = _response_entry(result, include or entry.method == "GET")
        return [r for r in results if r is not None]

    out = await services.store.atomically(work)
    return FhirResponse(200, {"resourceType": "Bundle", "type": "transaction-response", "entry": out})


async def _assign_ids(services: Services, ctx: RequestContext, entries: list[EntryRequest]
                      ) -> tuple[dict[int, str], dict[int, FhirResponse], dict[str, str]]:
    """Ids for POST entries (new, or the match of `ifNoneExist`) and conditional PUTs, before anything runs,
    so every reference to a fullUrl can point at its final id."""
    assigned: dict[int, str] = {}
    existing: dict[int, FhirResponse] = {}
    rewrite: dict[str, str] = {}
    seen_conditions: dict[tuple[str, str], str] = {}
    for entry in entries:
        t = entry.resource_type
        if t is None:
            continue
        condition = _criteria(entry.request.get("ifNoneExist")) if entry.method == "POST" else \
            entry.query if entry.method == "PUT" and entry.id is None else None
        if entry.method == "POST" or (entry.method == "PUT" and entry.id is None):
            target: str | None = None
            if condition:
                key = (t, condition)
                if key in seen_conditions:
                    target = seen_conditions[key]
                else:
                    ids = await matching_ids(services, ctx, t, parse_query(condition))
                    if len(ids) > 1:
                        raise _fail(entry.index, f"{condition} matches more than one {t}", 412)
                    if ids:
                        target = ids[0]
                        if entry.method == "POST":
                            stored = await services.store.current(t, target)
                            assert stored is not None
                            existing[entry.index] = FhirResponse(200, stored.raw, {
                                "Location": f"{ctx.base_url}/{t}/{target}/_history/{stored.version}",
                                "ETag": f'W/"{stored.version}"'})
            if target is None:
                target = new_id()
                if entry.method == "PUT" and isinstance(entry.resource, dict) and \
                        isinstance(entry.resource.get("id"), str):
                    target = entry.resource["id"]
            if condition:
                seen_conditions[(t, condition)] = target
            assigned[entry.index] = target
        elif entry.method == "PUT" and entry.id is not None:
            target = entry.id
        else:
            continue
        if entry.full_url and (entry.method == "POST" or entry.full_url.startswith(("urn:uuid:", "urn:oid:"))):
            rewrite[entry.full_url] = f"{t}/{target}"  # references to the entry follow it to its final id
    return assigned, existing, rewrite
