"""Enforcement on the FHIR API: every interaction asks here before it reads, lists or writes.

auth/access.py decides which clauses apply; this module turns them into MongoDB filters with the search
engine's own parser and translator (a v2 constraint `category=…|vital-signs` is exactly the search
`?category=…|vital-signs`), and applies them:

- a whole-type refusal (no scope names the type and letter) is 403;
- reading or changing one resource outside what the token may see is 404, so existence does not leak;
- a write whose result would fall outside the token's reach is 403 and rolls back (the check runs inside
  the write's transaction, on the stored result, by the same filter a search would use).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace

from fhir_server import errors
from fhir_server.auth import access
from fhir_server.auth.access import Restriction
from fhir_server.context import RequestContext
from fhir_server.db.store import NewVersion
from fhir_server.search.filters import Filter, FilterContext, all_of
from fhir_server.search.parse import Parser
from fhir_server.search.translate import Translator
from fhir_server.services import Services

MATCH_NOTHING: Filter = {"_id": {"$in": []}}
_VERBS = {"c": "create", "r": "read", "u": "update", "d": "delete", "s": "search"}

# A type filter: None when the caller may not touch the type at all, {} when it may touch everything.
TypeFilter = Callable[[str], Awaitable[Filter | None]]


def require(ctx: RequestContext, resource_type: str, letter: str) -> Restriction:
    restriction = access.restriction(ctx.caller, resource_type, letter)
    if not restriction.allowed:
        raise errors.forbidden(f"The access token does not allow {_VERBS[letter]} on {resource_type} "
                               f"(no granted scope covers {resource_type}.{letter})")
    return restriction


async def _constraint_filter(services: Services, ctx: RequestContext, resource_type: str,
                             constraints: tuple[tuple[str, str], ...]) -> Filter | None:
    """A v2 scope's query as a filter on `resource_type`; None when it cannot apply to that type (a
    `patient/*.rs?category=…` scope says nothing about types without `category`: it grants none of them)."""
    settings = services.settings
    parser = Parser(services.search_registry, services.registry.types, True, settings.max_page_size,
                    settings.default_page_size)
    try:
        query = parser.parse(resource_type, list(constraints))
        if query.includes or not query.criteria:
            return None
        bases = tuple(b for b in (ctx.base_url, settings.base_url) if b)
        translator = Translator(services.search_registry, services.store, FilterContext(bases, ctx.now))
        return await translator.query_filter(resource_type, query)
    except errors.FhirError:
        return None


async def restriction_filter(services: Services, ctx: RequestContext, resource_type: str,
                             restriction: Restriction) -> Filter:
    if restriction.unrestricted:
        return {}
    options: list[Filter] = []
    for clause in restriction.clauses:
        parts: list[Filter] = []
        if clause.compartment is not None:
            parts.append({"pc": clause.compartment})
        if clause.constraints:
            constraint = await _constraint_filter(services, ctx, resource_type, clause.constraints)
            if constraint is None:
                continue
            parts.append(constraint)
        options.append(all_of(parts))
    if not options:
        return MATCH_NOTHING
    return options[0] if len(options) == 1 else {"$or": options}


async def type_filter(services: Services, ctx: RequestContext, resource_type: str, letter: str) -> Filter | None:
    restriction = access.restriction(ctx.caller, resource_type, letter)
    if not restriction.allowed:
        return None
    return await restriction_filter(services, ctx, resource_type, restriction)


def type_filters(services: Services, ctx: RequestContext, letter: str) -> TypeFilter | None:
    """A per-type filter source for the search engine's inner queries (chains, `_has`, includes); None
    when the caller is unrestricted, so the common case adds nothing to any query."""
    if ctx.caller.unrestricted:
        return None
    cache: dict[str, Filter | None] = {}

    async def get(resource_type: str) -> Filter | None:
        if resource_type not in cache:
            cache[resource_type] = await type_filter(services, ctx, resource_type, letter)
        return cache[resource_type]

    return get


async def search_filter(services: Services, ctx: RequestContext, resource_type: str, letter: str = "s") -> Filter:
    """The filter a search of `resource_type` is ANDed with (403 if the type may not be searched)."""
    return await restriction_filter(services, ctx, resource_type, require(ctx, resource_type, letter))


async def check_visible(services: Services, ctx: RequestContext, resource_type: str, id: str, letter: str) -> None:
    """403 if the type is out of reach; 404 if this resource is (a deleted resource counts as out of
    reach for a restricted token: its compartment cannot be checked any more). The signed-in user's own
    `fhirUser` resource is always readable: SMART promises the app can read it with the token."""
    if letter == "r" and ctx.caller.fhir_user == f"{resource_type}/{id}":
        return
    restriction = require(ctx, resource_type, letter)
    if restriction.unrestricted:
        return
    criteria = await restriction_filter(services, ctx, resource_type, restriction)
    if not await services.store.find_ids(resource_type, all_of([{"_id": id}, criteria]), 1):
        raise errors.not_found(f"{resource_type}/{id} is not known")


async def check_existing(services: Services, ctx: RequestContext, resource_type: str, id: str, letter: str) -> None:
    """Before changing `id`: if it exists and lies outside the token's reach, refuse (404 for delete, so
    it reads like any unknown id; 403 for update, which cannot pretend to create a taken id)."""
    restriction = require(ctx, resource_type, letter)
    if restriction.unrestricted or not await services.store.find_ids(resource_type, {"_id": id}, 1):
        return
    criteria = await restriction_filter(services, ctx, resource_type, restriction)
    if not await services.store.find_ids(resource_type, all_of([{"_id": id}, criteria]), 1):
        if letter == "d":
            raise errors.not_found(f"{resource_type}/{id} is not known")
        raise errors.forbidden(f"The access token may not {_VERBS[letter]} {resource_type}/{id}")


def history_compartment(ctx: RequestContext, resource_type: str | None) -> str | None:
    """The Patient compartment a type or system history must be confined to (None: no confinement).

    History entries carry their compartment but not their search values, so a history can honour a
    compartment but not a v2 query constraint: such tokens get a 403 and are pointed at search. System
    history counts only wildcard (`*`) scopes."""
    caller = ctx.caller
    if caller.unrestricted:
        return None
    if resource_type is None:
        caller = replace(caller, scopes=tuple(s for s in caller.scopes if s.resource_type == "*"))
    restriction = access.restriction(caller, resource_type or "Patient", "s")
    what = f"the history of {resource_type}" if resource_type else "the system history"
    if not restriction.allowed:
        raise errors.forbidden(f"The access token does not allow listing {what}")
    if restriction.unrestricted:
        return None
    compartments = restriction.compartments
    if len(compartments) != 1 or any(c.constraints for c in restriction.clauses) or None in compartments:
        raise errors.forbidden(f"The access token's scopes are query-constrained, which {what} cannot honour; "
                               "use search instead")
    return next(iter(compartments))


WriteCheck = Callable[[NewVersion], Awaitable[None]]


def write_check(services: Services, ctx: RequestContext, resource_type: str, letter: str) -> WriteCheck | None:
    """What a written version must satisfy, checked after it is stored and before its transaction commits;
    None when the caller may write anything of the type (no extra work on the common path)."""
    restriction = require(ctx, resource_type, letter)
    if restriction.unrestricted:
        return None

    async def check(new: NewVersion) -> None:
        if new.raw is None:
            return  # deletions are checked on the version they remove (check_visible)
        members = set(new.index.get("pc") or ())
        if not any(c.compartment is None or c.compartment in members for c in restriction.clauses):
            raise errors.forbidden(f"The access token may not {_VERBS[letter]} {resource_type} resources outside "
                                   f"its patient's compartment ({', '.join(sorted(str(c) for c in restriction.compartments))})")
        criteria = await restriction_filter(services, ctx, resource_type, restriction)
        if criteria and not await services.store.find_ids(resource_type, all_of([{"_id": new.id}, criteria]), 1):
            raise errors.forbidden(f"The {resource_type} written does not match the constraints of the access "
                                   f"token's {resource_type} scopes")

    return check
