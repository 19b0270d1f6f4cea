"""The resource store contract: current versions, every past version, and atomic units of work.

Interactions (`rest/`), search and Bundle processing talk to this protocol only. The store never validates
and never builds FHIR JSON: it keeps what it is given and hands back the stored bytes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class VersionConflict(Exception):
    """The resource is no longer at the version the writer read (someone else wrote first)."""


@dataclass(frozen=True)
class StoredVersion:
    """One version of one resource as stored. `raw` is the JSON served to clients; None for a deletion."""

    resource_type: str
    id: str
    version: int
    last_updated: datetime
    method: str
    raw: bytes | None

    @property
    def deleted(self) -> bool:
        return self.raw is None


@dataclass(frozen=True)
class NewVersion:
    """A version about to be written. `document` is the resource as BSON-ready data (None for a deletion);
    `index` holds server-owned values extracted for search."""

    resource_type: str
    id: str
    version: int
    last_updated: datetime
    method: str
    raw: bytes | None
    document: dict[str, Any] | None
    index: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class HistoryQuery:
    """Which history to list: system (no type), type (no id) or instance. Newest first.

    `since` keeps versions at or after it, `at` (a period) keeps the versions that were current at some
    point within it, and `after`
    is the opaque keyset cursor the previous page returned."""

    resource_type: str | None = None
    id: str | None = None
    since: datetime | None = None
    at: tuple[datetime, datetime] | None = None
    limit: int = 50
    after: str | None = None
    compartment: str | None = None  # only versions in this Patient compartment (`Patient/<id>`)


@dataclass(frozen=True)
class HistoryPage:
    entries: list[StoredVersion]
    next_cursor: str | None
    total: int | None = None


class ResourceStore(Protocol):
    async def prepare(self, resource_type: str) -> None:
        """Make a type ready for writes (its collection and search indexes); cheap after the first call.
        Call it outside any transaction (index builds cannot run inside one)."""

    async def current(self, resource_type: str, id: str) -> StoredVersion | None:
        """The newest version (a deletion included), or None if the id was never written."""

    async def version(self, resource_type: str, id: str, version: int) -> StoredVersion | None:
        """One past or current version, or None if it does not exist."""

    async def commit(self, new: NewVersion, expected: StoredVersion | None) -> None:
        """Write `new` as the current version and append it to history, atomically.

        `expected` is the version the writer based its change on (None: the id must not exist yet; a
        deletion: the id must still be deleted). Raises `VersionConflict` if the store has moved on."""

    async def history(self, query: HistoryQuery) -> HistoryPage:
        """One page of history entries, newest first."""

    async def find_ids(self, resource_type: str, criteria: dict[str, Any], limit: int) -> list[str]:
        """Ids of live resources matching store-level `criteria` (at most `limit`)."""

    async def set_index(self, resource_type: str, updates: list[tuple[str, int, dict[str, Any]]]) -> int:
        """Replace the search values of resources `(id, version, index sections)`, each only if still at
        that version; returns how many were updated."""

    async def find(self, resource_type: str, criteria: dict[str, Any], projection: dict[str, Any],
                   limit: int, sort: list[tuple[str, int]] | None = None) -> list[dict[str, Any]]:
        """Current-version documents of a type matching store-level `criteria`, as stored (search uses the
        `ix`/`sk` fields described in docs/search.md)."""

    def scan_raw(self, resource_type: str, criteria: dict[str, Any], batch_size: int = 500) -> AsyncIterator[bytes]:
        """Every matching live resource's stored JSON in `_id` order, streamed (memory stays flat)."""

    async def count(self, resource_type: str, criteria: dict[str, Any]) -> int:
        """How many current-version documents match."""

    def transaction(self) -> AbstractAsyncContextManager[None]:
        """A unit of work: every store call awaited inside it commits or rolls back together."""

    async def atomically(self, work: Callable[[], Awaitable[T]]) -> T:
        """Run `work` as one transaction, re-running it on transient conflicts; joins an outer unit of work."""

    def after_commit(self, action: Callable[[], None]) -> None:
        """Run `action` once the running unit of work has committed (at once outside one); never if it rolls
        back. For in-memory state that must follow the database, such as the search registry."""

    async def lock(self, key: str) -> None:
        """Inside `atomically`: serialise with every other unit of work that locks the same key (used so that
        two conditional creates with the same criteria cannot both create)."""

    async def ping(self) -> bool:
        """Whether the database answers."""

    def stream_types(self) -> AsyncIterator[str]:
        """Resource types that have at least one stored resource."""
