"""`ResourceStore` on MongoDB (PyMongo's async API).

Layout (docs/ARCHITECTURE.md#storage):
- one collection per resource type holds the live current versions: `{_id: id, v, ts, m, raw, resource,
  ix…}`; `resource` is the FHIR JSON for ordinary MongoDB tools, `raw` the exact bytes served, `ix…` the
  search values (docs/search.md). A deleted resource leaves this collection, so every query over it sees
  live resources only with no extra predicate; its deletion (and the version to carry on from) is the
  newest history entry.
- one `history` collection holds every version of every type: `{_id: "Type/id/v", t, i, v, ts, m, raw}`.
Each write updates both inside one MongoDB transaction.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass, field
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

from bson import Binary, Decimal128
from bson.codec_options import CodecOptions, TypeEncoder, TypeRegistry
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, IndexModel, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError, PyMongoError

from fhir_server.db.store import HistoryPage, HistoryQuery, NewVersion, StoredVersion, VersionConflict

HISTORY = "history"
INDEX_SECTIONS = ("ix", "ixp", "ex", "tx", "ot", "ri", "sk", "pc")  # docs/search.md
LOCKS = "locks"
T = TypeVar("T")
_CURRENT_FIELDS = {"v": 1, "ts": 1, "m": 1, "raw": 1}


class _DecimalEncoder(TypeEncoder):
    """FHIR decimals are parsed as `Decimal`; Decimal128 keeps their digits and compares numerically."""

    python_type = Decimal

    def transform_python(self, value: Decimal) -> Decimal128:
        return Decimal128(value)


CODEC_OPTIONS: CodecOptions[dict[str, Any]] = CodecOptions(
    tz_aware=True, type_registry=TypeRegistry([_DecimalEncoder()])
)

@dataclass
class _Unit:
    """The unit of work of the running task: its session, and inserts held back to be written together."""

    session: AsyncClientSession
    pending: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    committed: list[Callable[[], None]] = field(default_factory=list)  # after_commit actions, in order


_unit: contextvars.ContextVar[_Unit | None] = contextvars.ContextVar("fhir_unit", default=None)


def _as_version(resource_type: str, id: str, doc: dict[str, Any]) -> StoredVersion:
    raw = doc.get("raw")
    return StoredVersion(resource_type, id, int(doc["v"]), doc["ts"].astimezone(UTC), doc.get("m", "PUT"),
                         bytes(raw) if raw is not None else None)


class MongoResourceStore:
    """The MongoDB implementation of `ResourceStore`."""

    def __init__(self, client: AsyncMongoClient[dict[str, Any]], database: str,
                 index_keys: Callable[[str], list[str]] = lambda _: []) -> None:
        self._client = client
        self._db: AsyncDatabase[dict[str, Any]] = client.get_database(database, codec_options=CODEC_OPTIONS)
        self._index_keys = index_keys
        self._prepared: dict[str, tuple[str, ...]] = {}

    @property
    def database(self) -> AsyncDatabase[dict[str, Any]]:
        return self._db

    async def ensure_indexes(self) -> None:
        """History indexes serve the three history levels newest-first (walked backwards); `_id` serves reads.

        Ascending keys on purpose: SecantusDB 0.7.0b3 drops boundary matches of a string `$gte` on a
        descending index (see bench/RESULTS.md); MongoDB walks an ascending index backwards just as fast."""
        history = self._db[HISTORY]
        await history.create_index([("k", ASCENDING)], name="system_history")
        await history.create_index([("t", ASCENDING), ("k", ASCENDING)], name="type_history")
        await history.create_index([("t", ASCENDING), ("i", ASCENDING), ("k", ASCENDING)], name="instance_history")

    async def prepare(self, resource_type: str) -> None:
        keys = tuple(self._index_keys(resource_type))
        if self._prepared.get(resource_type) == keys or _unit.get() is not None:
            return  # inside a transaction index builds are not allowed; callers prepare before one
        if keys:
            models = [IndexModel([(key, ASCENDING)], name=key) for key in keys]
            await self._db[resource_type].create_indexes(models)
        self._prepared[resource_type] = keys

    async def prepare_existing(self) -> None:
        """At start-up: bring the indexes of every stored type in line with the registry."""
        async for resource_type in self.stream_types():
            await self.prepare(resource_type)

    async def current(self, resource_type: str, id: str) -> StoredVersion | None:
        session = await self._ready()
        doc = await self._db[resource_type].find_one({"_id": id}, _CURRENT_FIELDS, session=session)
        if doc is not None:
            return _as_version(resource_type, id, doc)
        # Not live: deleted (the newest history entry is the deletion) or never written.
        last = await self._db[HISTORY].find_one({"t": resource_type, "i": id}, sort=[("k", DESCENDING)],
                                                session=session)
        if last is None or last.get("raw") is not None:
            return None
        return _as_version(resource_type, id, last)

    async def version(self, resource_type: str, id: str, version: int) -> StoredVersion | None:
        doc = await self._db[HISTORY].find_one({"_id": f"{resource_type}/{id}/{version}"}, session=await self._ready())
        return _as_version(resource_type, id, doc) if doc else None

    async def commit(self, new: NewVersion, expected: StoredVersion | None) -> None:
        unit = _unit.get()
        if unit is not None:
            if new.raw is not None and expected is None:
                # a brand-new id inside a unit of work: write it with the others in one insert_many
                current, entry = self._documents(new)
                unit.pending.setdefault(new.resource_type, []).append(current)
                unit.pending.setdefault(HISTORY, []).append(entry)
                return
            await self._flush(unit)
            await self._write(new, expected, unit.session)
            return
        async with self._client.start_session() as own:
            async def work(s: AsyncClientSession) -> None:
                await self._write(new, expected, s)
            await own.with_transaction(work)

    @staticmethod
    def _documents(new: NewVersion) -> tuple[dict[str, Any], dict[str, Any]]:
        """The current-version document and the history entry for `new`."""
        key = f"{new.resource_type}/{new.id}/{new.version}"
        entry: dict[str, Any] = {"_id": key, "t": new.resource_type, "i": new.id, "v": new.version,
                                 "ts": new.last_updated, "k": _sort_key(new.last_updated, key), "m": new.method}
        current: dict[str, Any] = {}
        if new.raw is not None:
            raw = Binary(new.raw)
            entry["raw"] = raw
            if new.index.get("pc"):
                entry["pc"] = new.index["pc"]  # patient-scoped history lists only its compartment
            current = {"_id": new.id, "v": new.version, "ts": new.last_updated, "m": new.method, "raw": raw,
                       "resource": new.document, **new.index}
        return current, entry

    async def _ready(self) -> AsyncClientSession | None:
        """The session of the running unit of work (None outside one), its held-back inserts written first
        so every read sees them."""
        unit = _unit.get()
        if unit is None:
            return None
        if unit.pending:
            await self._flush(unit)
        return unit.session

    async def _flush(self, unit: _Unit) -> None:
        pending, unit.pending = unit.pending, {}
        for collection, documents in pending.items():
            try:
                await self._db[collection].insert_many(documents, ordered=True, session=unit.session)
            except BulkWriteError as exc:
                raise VersionConflict(f"a resource created in this transaction already exists: {exc.details.get('writeErrors', [{}])[0].get('errmsg', '')}") from None

    async def _write(self, new: NewVersion, expected: StoredVersion | None, session: AsyncClientSession) -> None:
        collection = self._db[new.resource_type]
        if new.raw is None:  # a deletion: the resource leaves its type's collection; history keeps the tombstone
            assert expected is not None and not expected.deleted
            removed = await collection.delete_one({"_id": new.id, "v": expected.version}, session=session)
            if removed.deleted_count != 1:
                raise VersionConflict(f"{new.resource_type}/{new.id} is no longer at version {expected.version}")
        else:
            current, _ = self._documents(new)
            if expected is None or expected.deleted:
                try:
                    await collection.insert_one(current, session=session)
                except DuplicateKeyError:
                    raise VersionConflict(f"{new.resource_type}/{new.id} already exists") from None
            else:
                result = await collection.replace_one({"_id": new.id, "v": expected.version}, current, session=session)
                if result.matched_count != 1:
                    raise VersionConflict(f"{new.resource_type}/{new.id} is no longer at version {expected.version}")
        _, entry = self._documents(new)
        try:
            await self._db[HISTORY].insert_one(entry, session=session)
        except DuplicateKeyError:
            raise VersionConflict(f"{new.resource_type}/{new.id} version {new.version} exists") from None
        if expected is not None:  # the superseded version stops being current now (serves `_at`)
            await self._db[HISTORY].update_one({"_id": f"{new.resource_type}/{new.id}/{expected.version}"},
                                               {"$set": {"until": new.last_updated}}, session=session)

    async def history(self, query: HistoryQuery) -> HistoryPage:
        criteria: dict[str, Any] = {}
        if query.resource_type:
            criteria["t"] = query.resource_type
        if query.id:
            criteria["i"] = query.id
        if query.compartment:
            criteria["pc"] = query.compartment
        key_range: dict[str, str] = {}
        if query.since:
            key_range["$gte"] = _sort_key(query.since, "")
        if query.after:
            key_range["$lt"] = query.after
        if key_range:
            criteria["k"] = key_range
        if query.at:
            start, end = query.at
            criteria["ts"] = {"$lte": end}
            criteria["$or"] = [{"until": {"$exists": False}}, {"until": {"$gt": start}}]
        cursor = self._db[HISTORY].find(criteria, sort=[("k", DESCENDING)], limit=query.limit + 1, session=await self._ready())
        docs = [doc async for doc in cursor]
        more = len(docs) > query.limit
        docs = docs[: query.limit]
        entries = [_as_version(d["t"], d["i"], d) for d in docs]
        return HistoryPage(entries, docs[-1]["k"] if more and docs else None)

    async def find_ids(self, resource_type: str, criteria: dict[str, Any], limit: int) -> list[str]:
        cursor = self._db[resource_type].find(criteria, {"_id": 1}, limit=limit, session=await self._ready())
        return [doc["_id"] async for doc in cursor]

    async def set_index(self, resource_type: str, updates: list[tuple[str, int, dict[str, Any]]]) -> int:
        if not updates:
            return 0
        requests = []
        for id, version, index in updates:
            unset = {section: "" for section in INDEX_SECTIONS if section not in index}
            change: dict[str, Any] = {"$set": index} if index else {}
            if unset:
                change["$unset"] = unset
            if change:
                requests.append(UpdateOne({"_id": id, "v": version}, change))
        if not requests:
            return 0
        result = await self._db[resource_type].bulk_write(requests, ordered=False, session=await self._ready())
        return int(result.matched_count)

    async def find(self, resource_type: str, criteria: dict[str, Any], projection: dict[str, Any],
                   limit: int, sort: list[tuple[str, int]] | None = None) -> list[dict[str, Any]]:
        cursor = self._db[resource_type].find(criteria, projection, limit=limit, sort=sort, session=await self._ready())
        return [doc async for doc in cursor]

    async def scan_raw(self, resource_type: str, criteria: dict[str, Any], batch_size: int = 500) -> AsyncIterator[bytes]:
        """Every matching resource's stored JSON, streamed in `_id` order with a bounded batch in memory."""
        cursor = self._db[resource_type].find(criteria, {"raw": 1}, sort=[("_id", ASCENDING)], batch_size=batch_size)
        async for doc in cursor:
            yield bytes(doc["raw"])

    async def count(self, resource_type: str, criteria: dict[str, Any]) -> int:
        return await self._db[resource_type].count_documents(criteria, session=await self._ready())

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        if _unit.get() is not None:  # nested: join the outer unit of work
            yield
            return
        async with self._client.start_session() as session:
            async with await session.start_transaction():
                unit = _Unit(session)
                token = _unit.set(unit)
                try:
                    yield
                    await self._flush(unit)
                finally:
                    _unit.reset(token)
            for action in unit.committed:  # reached only when the transaction committed
                action()

    async def atomically(self, work: Callable[[], Awaitable[T]]) -> T:
        if _unit.get() is not None:
            return await work()
        async with self._client.start_session() as session:
            last: list[_Unit] = []

            async def attempt(s: AsyncClientSession) -> T:
                unit = _Unit(s)
                last[:] = [unit]  # a retried attempt replaces the one before: only the committed one counts
                token = _unit.set(unit)
                try:
                    result = await work()
                    await self._flush(unit)
                    return result
                finally:
                    _unit.reset(token)
            result = await session.with_transaction(attempt)
        for action in last[0].committed if last else ():
            action()
        return result

    def after_commit(self, action: Callable[[], None]) -> None:
        unit = _unit.get()
        if unit is None:
            action()
        else:
            unit.committed.append(action)

    async def lock(self, key: str) -> None:
        unit = _unit.get()
        if unit is None:
            raise RuntimeError("lock() only has meaning inside atomically()")
        await self._db[LOCKS].update_one({"_id": key}, {"$inc": {"n": 1}}, upsert=True, session=unit.session)

    async def ping(self) -> bool:
        try:
            await self._client.admin.command("ping")
        except PyMongoError:
            return False
        return True

    async def stream_types(self) -> AsyncIterator[str]:
        for name in sorted(await self._db.list_collection_names()):
            if name[:1].isupper():
                yield name


def _sort_key(ts: datetime, key: str) -> str:
    """History order in one indexable string: milliseconds since the epoch (zero-padded), then the entry id."""
    return f"{int(ts.timestamp() * 1000):015d}|{key}"
