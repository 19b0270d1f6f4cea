"""The search behind conditional create, update and delete (http.html#ccreate, #cond-update, #cdelete).

Any search the search API accepts works as a condition, parsed strictly: a parameter this server does
not support is a 400 naming it, never a silently wider match (which could update or delete the wrong
resource). Conditional writes run inside a transaction holding a lock named by the normalised criteria,
so two identical conditional creates cannot both create.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl

from fhir_server import errors
from fhir_server.context import RequestContext
from fhir_server.rest import guard
from fhir_server.rest.response import FhirResponse
from fhir_server.search import branches
from fhir_server.search.filters import FilterContext
from fhir_server.search.parse import Parser
from fhir_server.search.translate import Translator
from fhir_server.services import Services

MAX_QUERY_LENGTH = 4096
_NOT_CRITERIA = {"_format", "_pretty", "_summary", "_elements", "_count", "_sort", "_total"}


def parse_query(query: str) -> list[tuple[str, str]]:
    if len(query) > MAX_QUERY_LENGTH:
        raise errors.invalid(f"The search query is longer than {MAX_QUERY_LENGTH} characters")
    try:
        pairs = parse_qsl(query.lstrip("?"), keep_blank_values=True, max_num_fields=50)
    except ValueError as exc:
        raise errors.invalid(f"The search query cannot be parsed: {exc}") from None
    params = [(k, v) for k, v in pairs if k not in _NOT_CRITERIA]
    if not params:
        raise errors.invalid("A conditional request needs search criteria (for example identifier=system|value)")
    return params


def lock_key(resource_type: str, params: list[tuple[str, str]]) -> str:
    """One name for one set of criteria, whatever order the client wrote them in."""
    return resource_type + "?" + "&".join(sorted(f"{k}={v}" for k, v in params))


async def matching_ids(services: Services, ctx: RequestContext, resource_type: str,
                       params: list[tuple[str, str]], limit: int = 2) -> list[str]:
    """Ids of current resources matching the criteria (at most `limit`: callers only tell 0, 1 and many)."""
    settings = services.settings
    parser = Parser(services.search_registry, services.registry.types, True, settings.max_page_size,
                    settings.default_page_size)
    query = parser.parse(resource_type, params)
    if query.includes or not query.criteria:
        raise errors.invalid("A condition takes search parameters only (no _include, _revinclude or paging)")
    bases = tuple(b for b in (ctx.base_url, settings.base_url) if b)
    translator = Translator(services.search_registry, services.store, FilterContext(bases, ctx.now))
    # a condition sees only what the token may search: it can neither match nor reveal anything else
    scope = await guard.search_filter(services, ctx, resource_type)
    criteria = await translator.query_filter(resource_type, query, scope or None)
    return await branches.find_ids(services.store, resource_type, criteria, limit)


async def at_most_one(services: Services, ctx: RequestContext, resource_type: str, query: str, what: str,
                      action: Callable[[str | None], Awaitable[FhirResponse]]) -> FhirResponse:
    """Run `action` with the single match of `query` (None when nothing matches) inside a transaction that
    holds the criteria's lock; several matches are a 412 naming `what` (e.g. `If-None-Exist: …`)."""
    params = parse_query(query)
    store = services.store

    async def locked() -> FhirResponse:
        await store.lock(lock_key(resource_type, params))
        ids = await matching_ids(services, ctx, resource_type, params)
        if len(ids) > 1:
            raise errors.precondition_failed(f"{what} matches more than one {resource_type}")
        return await action(ids[0] if ids else None)

    await store.prepare(resource_type)  # index builds cannot run inside the transaction
    return await store.atomically(locked)
