"""history: `GET [base]/[type]/[id]/_history`, `[type]/_history` and `[base]/_history` (http.html#history).

Newest first, with `_since`, `_at`, `_count` and keyset paging (`_cursor`), so walking `next` links while
writes go on neither repeats nor skips an entry. Every entry carries `request` and `response`; a deletion
is an entry without a resource.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import orjson

from fhir_server import errors
from fhir_server.context import RequestContext
from fhir_server.db.store import HistoryQuery, StoredVersion
from fhir_server.rest import guard
from fhir_server.rest.response import FhirResponse, etag
from fhir_server.rest.write import check_id, check_type, instant
from fhir_server.search.dates import parse_range
from fhir_server.services import Services

MAX_CURSOR = 200
_KNOWN = {"_since", "_at", "_count", "_cursor", "_format", "_pretty"}


def _page_size(services: Services, value: str | None) -> int:
    if value is None:
        return services.settings.default_page_size
    if not value.isdigit():
        raise errors.invalid(f"_count={value} is not a whole number", "_count")
    return min(int(value), services.settings.max_page_size)


async def history(services: Services, ctx: RequestContext, resource_type: str | None, id: str | None,
                  params: list[tuple[str, str]]) -> FhirResponse:
    if resource_type is not None:
        check_type(services, resource_type)
    if id is not None:
        check_id(id)
        assert resource_type is not None
        await guard.check_visible(services, ctx, resource_type, id, "r")
        compartment = None
    else:
        compartment = guard.history_compartment(ctx, resource_type)
    values: dict[str, str] = {}
    for name, value in params:
        if name not in _KNOWN:
            raise errors.invalid(f"'{name}' is not a history parameter (use _since, _at, _count)", name)
        if name in values:
            raise errors.invalid(f"{name} is given more than once", name)
        values[name] = value
    since = parse_range(values["_since"], "_since")[0] if "_since" in values else None
    at = parse_range(values["_at"], "_at") if "_at" in values else None
    cursor = values.get("_cursor")
    if cursor is not None and (len(cursor) > MAX_CURSOR or "|" not in cursor):
        raise errors.invalid("_cursor is not a cursor this server issued", "_cursor")
    count = _page_size(services, values.get("_count"))
    if count == 0:
        page_entries: list[StoredVersion] = []
        next_cursor = None
    else:
        page = await services.store.history(HistoryQuery(resource_type, id, since, at, count, cursor, compartment))
        page_entries, next_cursor = page.entries, page.next_cursor
    path = "/".join(p for p in (resource_type, id, "_history") if p)
    own = [(k, v) for k, v in values.items() if k != "_cursor"]
    links = [{"relation": "self", "url": _link(ctx, path, [*own, *([("_cursor", cursor)] if cursor else [])])}]
    if next_cursor:
        links.append({"relation": "next", "url": _link(ctx, path, [*own, ("_count", str(count)), ("_cursor", next_cursor)])})
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "history", "link": links,
                              "entry": [_entry(ctx, v) for v in page_entries]}
    return FhirResponse(200, bundle)


def _link(ctx: RequestContext, path: str, params: list[tuple[str, str]]) -> str:
    unique = dict(params)
    query = urlencode(list(unique.items()))
    return ctx.url(path) + (f"?{query}" if query else "")


def _entry(ctx: RequestContext, version: StoredVersion) -> dict[str, Any]:
    url = f"{version.resource_type}/{version.id}"
    entry: dict[str, Any] = {"fullUrl": ctx.url(url)}
    if version.raw is not None:
        entry["resource"] = orjson.Fragment(version.raw)
    method = version.method if version.method in ("POST", "PUT", "PATCH", "DELETE") else "PUT"
    if version.deleted:
        status = "204 No Content"
    elif version.version == 1:
        status = "201 Created"
    else:
        status = "200 OK"
    entry["request"] = {"method": method, "url": version.resource_type if method == "POST" else url}
    entry["response"] = {"status": status, "etag": etag(version.version), "lastModified": instant(version.last_updated)}
    return entry
