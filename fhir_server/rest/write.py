"""The write pipeline shared by create, update, patch and delete (http.html#update, #concurrency).

Checks the body against the URL, validates it, stamps the server-owned `meta` fields, and commits with
optimistic locking: a stale `If-Match` is a 412, and a concurrent writer without `If-Match` is retried on
the fresh version, so no update is ever lost.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from fhir_server import errors, fhirjson
from fhir_server.context import RequestContext
from fhir_server.db.store import (
    NewVersion,
    ResourceStore,
    StoredVersion,
    VersionConflict,
)
from fhir_server.errors import FhirError
from fhir_server.model.registry import is_valid_id
from fhir_server.search import custom
from fhir_server.services import Services

MAX_ATTEMPTS = 64


def new_id() -> str:
    return str(uuid.uuid4())


def check_type(services: Services, resource_type: str) -> None:
    if resource_type not in services.registry:
        raise errors.not_found(f"Unknown resource type '{resource_type}'")


def check_id(id: str) -> None:
    if not is_valid_id(id):
        raise errors.invalid(f"'{id}' is not a valid resource id (1-64 of A-Z a-z 0-9 - .)")


def check_body(services: Services, resource_type: str, body: Any, url_id: str | None) -> dict[str, Any]:
    """The body as a resource of the URL's type; on update (`url_id` given) its id must match the URL."""
    if not isinstance(body, dict):
        raise errors.invalid(f"The body must be a JSON object holding a {resource_type} resource")
    body_type = body.get("resourceType")
    if body_type != resource_type:
        if not isinstance(body_type, str):
            raise errors.invalid("The body has no resourceType", "resourceType")
        raise errors.invalid(f"The body is a {body_type} but the URL is for {resource_type}", "resourceType")
    if url_id is not None:
        body_id = body.get("id")
        if body_id is None:
            raise errors.invalid(f"An update must carry the resource id ({url_id}) in the body", f"{resource_type}.id")
        if body_id != url_id:
            raise errors.invalid(f"The body's id '{body_id}' differs from the id in the URL '{url_id}'",
                                 f"{resource_type}.id")
    issues = [i for i in services.validator.validate(body) if i.severity in ("error", "fatal")]
    if issues:
        raise FhirError(400, issues)
    if resource_type == "SearchParameter":
        custom.check(services.search_registry, services.registry.types, body)
    return body


def stamp(resource: dict[str, Any], id: str, version: int, when: datetime) -> dict[str, Any]:
    """The resource as stored: our id and `meta.versionId`/`lastUpdated`; the client's other meta kept."""
    meta = dict(resource.get("meta") or {})
    meta["versionId"] = str(version)
    meta["lastUpdated"] = instant(when)
    out: dict[str, Any] = {"resourceType": resource["resourceType"], "id": id, "meta": meta}
    for key, value in resource.items():
        if key not in out:
            out[key] = value
    return out


def instant(when: datetime) -> str:
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def next_timestamp(ctx: RequestContext, current: StoredVersion | None) -> datetime:
    """Now, truncated to what MongoDB stores (ms), and always after the previous version's time."""
    now = ctx.now.replace(microsecond=ctx.now.microsecond // 1000 * 1000)
    if current is not None and now <= current.last_updated:
        now = current.last_updated + timedelta(milliseconds=1)
    return now


def build_version(services: Services, resource_type: str, id: str, resource: dict[str, Any] | None,
                  current: StoredVersion | None, ctx: RequestContext, method: str) -> NewVersion:
    """The next version of `id`: stamped, serialised once (the bytes every read will serve) and with its
    search values extracted."""
    version = current.version + 1 if current else 1
    when = next_timestamp(ctx, current)
    if resource is None:
        return NewVersion(resource_type, id, version, when, method, None, None)
    stored = stamp(resource, id, version, when)
    index = services.extractor.extract(resource_type, stored)
    return NewVersion(resource_type, id, version, when, method, fhirjson.dumps(stored), stored, index)


async def commit(services: Services, resource_type: str, id: str, if_match: int | None,
                 change: Callable[[StoredVersion | None], NewVersion | None],
                 fresh_id: bool = False, check: Callable[[NewVersion], Awaitable[None]] | None = None
                 ) -> tuple[StoredVersion | None, NewVersion | None]:
    """Apply `change` to the current version and commit it, retrying lost races unless `If-Match` pins it.

    `change` sees the current version (None if the id is new) and returns the version to write, or None
    for nothing to do. `fresh_id`: the id was just generated by the server. Returns (the version it saw,
    the version written). `check` (access control, rest/guard.py) sees the stored result inside the same
    transaction and may refuse it, which rolls the write back."""
    store = services.store
    await store.prepare(resource_type)
    for attempt in range(MAX_ATTEMPTS):
        # a server-made UUID cannot exist yet: skip the read (the insert's unique key still guards)
        current = None if fresh_id and attempt == 0 else await store.current(resource_type, id)
        if if_match is not None and (current is None or current.version != if_match):
            found = f"version {current.version}" if current else "no version"
            raise errors.precondition_failed(
                f"If-Match wanted version {if_match} of {resource_type}/{id} but the server has {found}")
        new = change(current)
        if new is None:
            return current, None
        try:
            if check is None:
                await store.commit(new, current)
            else:
                await store.atomically(lambda new=new, current=current: _commit_checked(store, new, current, check))
            if resource_type == "SearchParameter":
                # joins the registry only if the write commits (a transaction Bundle may still roll back)
                store.after_commit(partial(custom.apply, services.search_registry,
                                           current.raw if current else None, new.raw))
            return current, new
        except VersionConflict:
            if if_match is not None:
                raise errors.precondition_failed(
                    f"{resource_type}/{id} was changed by another request; version {if_match} is stale") from None
            await asyncio.sleep(random.uniform(0, 0.002 * (attempt + 1)))
    raise errors.conflict(f"{resource_type}/{id} is being changed by many requests at once; try again")


async def _commit_checked(store: ResourceStore, new: NewVersion, current: StoredVersion | None,
                          check: Callable[[NewVersion], Awaitable[None]]) -> None:
    await store.commit(new, current)
    await check(new)


def as_stored(new: NewVersion) -> StoredVersion:
    return StoredVersion(new.resource_type, new.id, new.version, new.last_updated, new.method, new.raw)
