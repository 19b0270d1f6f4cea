#!/usr/bin/env python
"""Search latency and throughput of the FHIR server, as ratios against a raw PyMongo floor on the same store.

One run, one store, growing through `--sizes` (default 10000,100000 resources):
1. bulk-loads whole Synthea records cloned with new ids (bench/synthetic.py) until the store holds the
   size: the documents are built with the server's own write-pipeline functions (`rest.write.stamp`,
   `fhirjson.dumps`, `search.extract.Extractor`), and inserted with PyMongo `insert_many` into the layout
   `MongoResourceStore` writes (current-version collection per type + `history`), into collections whose
   indexes the server's store created first (`MongoResourceStore.prepare`, `ensure_indexes`);
2. starts the FHIR server (its own process, `python -m fhir_server.cli serve`) on that store;
3. checks that every query of every shape returns the same, non-empty result from the server and from the
   floor (prints the counts), and logs what the server sends to the store for one query of each shape
   (the server's own Parser/Translator/execute, run in this process against a recording store);
4. measures each shape at `--concurrency` clients for `--duration` s per side, server and floor in
   interleaved slices (`--rounds`), and stops the server;
then grows the store to the next size and repeats; finally prints the tables and the growth in p50 latency
from the first size to the last. The floor for a shape is the PyMongo query sequence a hand-written app
would send on the same fields (`ix.*`, `ixp.*`, `_id`) with the same limits, and the follow-up `find`s for
includes, chains and `_has`. It is a measurement, not a test: exit 0 whatever the figures (1 only if it
could not run). Method and figures: bench/RESULTS.md ("Search").
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for path in (str(ROOT), str(HERE)):
    if path not in sys.path:
        sys.path.insert(0, path)

import synthetic
from harness import (
    CpuWatch,
    Phase,
    cpu_seconds,
    http_client,
    load_average,
    run_for,
    run_on_store,
    start_server,
    stop_server,
    store_description,
    version_of,
    wait_ready,
)

from fhir_server.db.mongo_store import CODEC_OPTIONS, MongoResourceStore
from fhir_server.search.dates import parse_range
from fhir_server.search.extract import Extractor
from fhir_server.search.index.encode import PREFIX_LENGTH, norm
from fhir_server.search.registry import SearchRegistry

GROWTH_GOAL = 1.5
LOINC = "http://loinc.org"
MR_SYSTEM = "http://hospital.smarthealthit.org"
VITALS = ("29463-7", "8302-2", "72514-3", "55284-4", "39156-5", "72166-2")  # in every Synthea record
HIGHEST = "\U0010ffff"

Floor = Callable[[Any], Awaitable[tuple[int, int]]]  # db -> (matches on the page, included resources)


# ------------------------------------------------------------------------------------------------ shapes

@dataclass
class Query:
    path: str  # the server request, relative to /fhir
    floor: Floor
    count: int  # _count of the search: the floor's page size
    note: str = ""


@dataclass
class Shape:
    key: str
    label: str
    kind: str  # "selective": same result at every size; "population": the result grows with the store
    queries: list[Query]


async def _docs(cursor: Any) -> list[dict[str, Any]]:
    return [d async for d in cursor]


def _page(docs: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    return docs[:count]


def _ref_ids(doc: dict[str, Any], code: str, resource_type: str) -> list[str]:
    values = (doc.get("ix") or {}).get(code) or []
    prefix = resource_type + "/"
    return [v[len(prefix):] for v in values if isinstance(v, str) and v.startswith(prefix) and v.count("/") == 1]


PAGE = {"raw": 1}  # what a searchset entry needs besides _id (the floor reads no more than that)


def floor_name(family: str, count: int) -> Floor:
    """`Patient?name=<prefix>`: starts-with on the stored prefix tokens (and the rest of a long prefix on
    the normalised values), as the index design of docs/search.md prescribes."""
    prefix = norm(family)
    criteria: dict[str, Any] = {"ixp.name": prefix[:PREFIX_LENGTH]}
    if len(prefix) > PREFIX_LENGTH:
        criteria["ix.name"] = {"$elemMatch": {"$gte": prefix, "$lt": prefix + HIGHEST}}

    async def run(db: Any) -> tuple[int, int]:
        docs = await _docs(db["Patient"].find(criteria, PAGE, sort=[("_id", 1)], limit=count + 1))
        return len(_page(docs, count)), 0
    return run


def floor_identifier(token: str, count: int) -> Floor:
    async def run(db: Any) -> tuple[int, int]:
        docs = await _docs(db["Patient"].find({"ix.identifier": token}, PAGE, sort=[("_id", 1)], limit=count + 1))
        return len(_page(docs, count)), 0
    return run


def floor_observations(patient: str, code: str, lo: datetime, hi: datetime, count: int) -> Floor:
    """One range on the date's start: Observations here carry one instant each, so `ge a & lt b` is
    `a <= start < b` (the verification checks the result is the server's)."""
    criteria = {"ix.patient": f"Patient/{patient}", "ix.code": code, "ix.date.lo": {"$gte": lo, "$lt": hi}}

    async def run(db: Any) -> tuple[int, int]:
        docs = await _docs(db["Observation"].find(criteria, PAGE, sort=[("_id", 1)], limit=count + 1))
        return len(_page(docs, count)), 0
    return run


def floor_include(code: str, count: int) -> Floor:
    async def run(db: Any) -> tuple[int, int]:
        docs = _page(await _docs(db["Observation"].find({"ix.code": code}, {"raw": 1, "ix.patient": 1},
                                                        sort=[("_id", 1)], limit=count + 1)), count)
        ids = sorted({i for d in docs for i in _ref_ids(d, "patient", "Patient")})
        included = await _docs(db["Patient"].find({"_id": {"$in": ids}}, PAGE)) if ids else []
        return len(docs), len(included)
    return run


def floor_revinclude(patient: str, count: int) -> Floor:
    async def run(db: Any) -> tuple[int, int]:
        docs = await _docs(db["Patient"].find({"_id": patient}, PAGE, limit=count + 1))
        included = await _docs(db["Observation"].find({"ix.subject": f"Patient/{patient}"}, PAGE, limit=1001))
        return len(docs), len(included)
    return run


def floor_chain(clinic: str, count: int) -> Floor:
    """`Observation?subject:Patient.organization.name=<clinic>`: the two inner look-ups, then the page."""
    prefix = norm(clinic)
    org_criteria: dict[str, Any] = {"ixp.name": prefix[:PREFIX_LENGTH]}
    if len(prefix) > PREFIX_LENGTH:
        org_criteria["ix.name"] = {"$elemMatch": {"$gte": prefix, "$lt": prefix + HIGHEST}}

    async def run(db: Any) -> tuple[int, int]:
        orgs = [f"Organization/{d['_id']}" for d in await _docs(db["Organization"].find(org_criteria, {"_id": 1}))]
        patients = [f"Patient/{d['_id']}" for d in
                    await _docs(db["Patient"].find({"ix.organization": {"$in": orgs}}, {"_id": 1}))]
        docs = await _docs(db["Observation"].find({"ix.subject": {"$in": patients}}, PAGE, sort=[("_id", 1)],
                                                  limit=count + 1))
        return len(_page(docs, count)), 0
    return run


def floor_has(code: str, count: int) -> Floor:
    async def run(db: Any) -> tuple[int, int]:
        sources = await _docs(db["Observation"].find({"ix.code": code}, {"ix.patient": 1}))
        ids = sorted({i for d in sources for i in _ref_ids(d, "patient", "Patient")})
        docs = await _docs(db["Patient"].find({"_id": {"$in": ids}}, PAGE, sort=[("_id", 1)], limit=count + 1))
        return len(_page(docs, count)), 0
    return run


def _q(resource_type: str, params: list[tuple[str, str]]) -> str:
    return f"/{resource_type}?{urlencode(params)}"


def _observations(resources: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    return [r for t, r in resources if t == "Observation"]


def _codes(observation: dict[str, Any]) -> list[str]:
    return [f"{c.get('system')}|{c.get('code')}" for c in observation.get("code", {}).get("coding", [])]


def rare_codes(loaded: int) -> list[str]:
    """LOINC codes of Observations found in exactly one Synthea record, one of the first `loaded` clones (a
    `_has` that stays under the server's bound of 1,000 inner matches up to ~100 clones of that record)."""
    per: dict[str, set[int]] = defaultdict(set)
    for c in range(len(synthetic.templates())):
        for obs in _observations(synthetic.clone(c)):
            for code in _codes(obs):
                per[code].add(c)
    return sorted(code for code, found in per.items()
                  if len(found) == 1 and min(found) < loaded and code.startswith(LOINC + "|"))


def build_shapes(targets: list[int], loaded: int, default_count: int) -> list[Shape]:
    """The queries of each shape, made from the clones `targets` (all loaded at the first size, as are the
    first `loaded` clones)."""
    name, ident, obs, include, rev, chain, has = ([] for _ in range(7))
    n = default_count
    for i, c in enumerate(targets):
        resources = synthetic.clone(c)
        patient = resources[0][1]
        pid = patient["id"]
        family = synthetic.family(c)
        name.append(Query(_q("Patient", [("name", family)]), floor_name(family, n), n))
        value = synthetic.identifier_value(c, MR_SYSTEM)
        token = f"{MR_SYSTEM}|{value}"
        ident.append(Query(_q("Patient", [("identifier", token)]), floor_identifier(token, n), n))
        # the vital sign this patient has most often; a date range holding its middle measurements
        per_code: dict[str, list[str]] = defaultdict(list)
        for o in _observations(resources):
            if isinstance(o.get("effectiveDateTime"), str):
                for code in _codes(o):
                    if code.split("|", 1)[1] in VITALS:
                        per_code[code].append(o["effectiveDateTime"])
        code, dates = max(per_code.items(), key=lambda kv: (len(kv[1]), kv[0]))
        starts = sorted(parse_range(d, "date")[0] for d in dates)
        a = starts[len(starts) // 4].date().isoformat()
        b = starts[(3 * len(starts)) // 4].date().isoformat()
        if a == b:
            b = starts[-1].date().isoformat()
        lo, hi = parse_range(a, "date")[0], parse_range(b, "date")[0]
        obs.append(Query(_q("Observation", [("patient", pid), ("code", code), ("date", f"ge{a}"), ("date", f"lt{b}")]),
                         floor_observations(pid, code, lo, hi, n), n))
        vital = f"{LOINC}|{VITALS[i % len(VITALS)]}"
        include.append(Query(_q("Observation", [("code", vital), ("_include", "Observation:patient"),
                                                ("_count", "20")]), floor_include(vital, 20), 20))
        rev.append(Query(_q("Patient", [("_id", pid), ("_revinclude", "Observation:subject")]),
                         floor_revinclude(pid, n), n))
        clinic = synthetic.clinic(c)
        chain.append(Query(_q("Observation", [("subject:Patient.organization.name", clinic), ("_count", "20")]),
                           floor_chain(clinic, 20), 20))
    for code in rare_codes(loaded):
        has.append(Query(_q("Patient", [("_has:Observation:patient:code", code)]), floor_has(code, n), n))
    return [
        Shape("name", "Patient?name=<6-letter family>", "selective", name),
        Shape("identifier", "Patient?identifier=system|value", "selective", ident),
        Shape("obs-date", "Observation?patient&code&date=ge&date=lt", "selective", obs),
        Shape("include", "Observation?code&_include=Observation:patient&_count=20", "population", include),
        Shape("revinclude", "Patient?_id&_revinclude=Observation:subject", "selective", rev),
        Shape("chain", "Observation?subject:Patient.organization.name&_count=20", "selective", chain),
        Shape("has", "Patient?_has:Observation:patient:code=<rare code>", "population", has),
    ]


# -------------------------------------------------------------------------------------------- loading

@dataclass
class Batch:
    current: dict[str, list[dict[str, Any]]]
    history: list[dict[str, Any]]
    resources: int
    next_clone: int


async def load(store: MongoResourceStore, builder: synthetic.StoredDocs, first_clone: int, have: int, want: int,
               batch_size: int) -> tuple[int, int, float, float]:
    """Insert whole clones from `first_clone` on until the store holds at least `want` resources.
    Returns (next clone, resources now, seconds, of which seconds waiting for the store)."""
    db = store.database

    def build(c: int, room: int) -> Batch:
        current: dict[str, list[dict[str, Any]]] = defaultdict(list)
        history: list[dict[str, Any]] = []
        n = 0
        while n < min(batch_size, room):
            for resource_type, resource in synthetic.clone(c):
                doc, entry = builder.build(resource_type, resource)
                current[resource_type].append(doc)
                history.append(entry)
                n += 1
            c += 1
        return Batch(current, history, n, c)

    started = time.perf_counter()
    waiting = 0.0
    pending = asyncio.ensure_future(asyncio.to_thread(build, first_clone, want - have))
    next_clone = first_clone
    while True:
        batch = await pending
        if not batch.resources:
            break
        have += batch.resources
        next_clone = batch.next_clone
        # build the next batch in a thread while the store inserts this one
        pending = asyncio.ensure_future(asyncio.to_thread(build, next_clone, want - have))
        t = time.perf_counter()
        for resource_type in batch.current:
            await store.prepare(resource_type)  # the server's indexes exist before the first insert
        await asyncio.gather(*(db[t_].insert_many(docs, ordered=False) for t_, docs in batch.current.items()),
                             db["history"].insert_many(batch.history, ordered=False))
        waiting += time.perf_counter() - t
        print(f"  {have:>7,} resources ({next_clone} clones), {time.perf_counter() - started:5.0f} s", flush=True)
    return next_clone, have, time.perf_counter() - started, waiting


# ----------------------------------------------------------------------------------- what the server sends

class RecordingStore(MongoResourceStore):
    """The server's store, noting every query the search code sends (for the log of query shapes)."""

    calls: list[str]

    async def find(self, resource_type: str, criteria: dict[str, Any], projection: dict[str, Any], limit: int,
                   sort: list[tuple[str, int]] | None = None) -> list[dict[str, Any]]:
        t = time.perf_counter()
        docs = await super().find(resource_type, criteria, projection, limit, sort)
        self.calls.append(f"{resource_type}.find({_show(criteria)}, projection={sorted(projection)}, "
                          f"sort={sort}, limit={limit}) -> {len(docs)} docs, {1000 * (time.perf_counter() - t):.1f} ms")
        return docs

    async def count(self, resource_type: str, criteria: dict[str, Any]) -> int:
        t = time.perf_counter()
        n = await super().count(resource_type, criteria)
        self.calls.append(f"{resource_type}.count({_show(criteria)}) -> {n}, {1000 * (time.perf_counter() - t):.1f} ms")
        return n


def _show(value: Any, width: int = 6) -> str:
    """A filter for the log: long `$in` lists shortened."""
    def shorten(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: shorten(x) for k, x in v.items()}
        if isinstance(v, list):
            out = [shorten(x) for x in v[:width]]
            return out + [f"... {len(v)} values"] if len(v) > width else out
        if isinstance(v, datetime):
            return v.isoformat()
        return v
    return orjson.dumps(shorten(value), default=str).decode()


async def server_queries(store: RecordingStore, path: str) -> list[str]:
    """Run one search through the server's own Parser, Translator and execute.run, in this process."""
    from urllib.parse import parse_qsl

    from fhir_server.config import Settings
    from fhir_server.model.registry import ResourceRegistry
    from fhir_server.search import execute
    from fhir_server.search.filters import FilterContext
    from fhir_server.search.parse import Parser
    from fhir_server.search.translate import Translator

    settings = Settings()
    registry = SearchRegistry.official()
    resource_type, _, query = path.lstrip("/").partition("?")
    params = parse_qsl(query, keep_blank_values=True)
    store.calls = []
    parsed = Parser(registry, ResourceRegistry().types, False, settings.max_page_size,
                    settings.default_page_size).parse(resource_type, params)
    translator = Translator(registry, store, FilterContext(("http://127.0.0.1/fhir",), datetime.now(UTC)))
    criteria = await translator.query_filter(resource_type, parsed)
    store.calls.append(f"=> {resource_type} filter {_show(criteria)}")
    await execute.run(store, registry, parsed, [(resource_type, criteria)])
    return store.calls


# ------------------------------------------------------------------------------------------- measuring

@dataclass
class ShapeResult:
    shape: Shape
    server: Phase
    floor: Phase
    counts: list[tuple[int, int, int, int]] = field(default_factory=list)  # server (m, inc), floor (m, inc)
    mismatches: int = 0
    server_error: str | None = None
    queries_log: list[str] = field(default_factory=list)


@dataclass
class SizeResult:
    size: int
    clones: int
    per_type: dict[str, int]
    load_s: float
    load_store_s: float
    shapes: list[ShapeResult]
    uptime: str


def _bundle_counts(body: bytes) -> tuple[int, int]:
    bundle = orjson.loads(body)
    modes = [e.get("search", {}).get("mode") for e in bundle.get("entry", [])]
    return modes.count("match"), modes.count("include")


async def measure_size(args: argparse.Namespace, store_uri: str, store_pid: int | None, database: str,
                       workdir: Path, shapes: list[Shape], size: int, clones: int, per_type: dict[str, int],
                       load_s: float, load_store_s: float) -> SizeResult:
    from pymongo import AsyncMongoClient

    proc, base, log = start_server(store_uri, database, workdir)
    results: list[ShapeResult] = []
    try:
        await wait_ready(base, proc, log, timeout=300)
        pids: dict[str, int | None] = {"server": proc.pid, "store": store_pid, "loadgen": None}
        if store_pid is None:
            del pids["store"]
        http = http_client(args.client, base + "/fhir", args.concurrency)
        if http.name == "httpx":
            print("WARNING: aiohttp is not installed: the load generator's own CPU cost distorts the server "
                  "figures (see bench/RESULTS.md)", flush=True)
        mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(store_uri, tz_aware=True, maxPoolSize=64)
        db = mongo.get_database(database, codec_options=CODEC_OPTIONS)
        recorder = RecordingStore(mongo, database)
        try:
            await asyncio.gather(*(mongo.admin.command("ping") for _ in range(args.concurrency)))
            for shape in shapes:
                result = ShapeResult(shape, Phase(f"server {shape.key}"), Phase(f"floor {shape.key}"))
                results.append(result)
                # -- same result from both sides, for every query of the shape
                for q in shape.queries:
                    r = await http.get(q.path)
                    if r.status != 200:
                        result.server_error = f"{r.status} {r.body[:300]!r} for {q.path}"
                        result.mismatches += 1
                        continue
                    sm, si = _bundle_counts(r.body)
                    fm, fi = await q.floor(db)
                    result.counts.append((sm, si, fm, fi))
                    if (sm, si) != (fm, fi) or sm == 0:
                        result.mismatches += 1
                result.queries_log = await server_queries(recorder, shape.queries[0].path)
                ms = [c[0] for c in result.counts]
                inc = [c[1] for c in result.counts]
                print(f"  {shape.key:<11} {len(shape.queries)} queries; server=floor for "
                      f"{len(result.counts) - result.mismatches}/{len(shape.queries)}; matches per query "
                      f"{min(ms, default=0)}..{max(ms, default=0)}, included {min(inc, default=0)}..{max(inc, default=0)}"
                      + (f"; SERVER ERROR {result.server_error}" if result.server_error else ""), flush=True)
                if result.server_error and not result.counts:
                    continue
                # -- timed, interleaved
                server_cycle = itertools.cycle(shape.queries)
                floor_cycle = itertools.cycle(shape.queries)

                async def get(queries: Any = server_cycle, phase: Phase = result.server) -> bool:
                    reply = await http.get(next(queries).path)
                    if reply.status != 200 and phase.first_error is None:
                        phase.first_error = f"{reply.status} {reply.body[:300]!r}"
                    return reply.status == 200

                async def find(queries: Any = floor_cycle) -> bool:
                    m, _ = await next(queries).floor(db)
                    return m > 0

                await run_for(Phase("warm-up"), args.warmup, None, get, args.concurrency)
                await run_for(Phase("warm-up"), args.warmup, None, find, args.concurrency)
                slice_s = args.duration / args.rounds
                order = [(result.server, get), (result.floor, find)]
                for i in range(args.rounds):
                    for phase, op in order if i % 2 == 0 else order[::-1]:
                        with CpuWatch(pids, phase):
                            await run_for(phase, slice_s, None, op, args.concurrency)
                print(f"    server {result.server.rate:7.1f}/s p50 {result.server.pct(50):7.1f} ms | floor "
                      f"{result.floor.rate:7.1f}/s p50 {result.floor.pct(50):7.1f} ms", flush=True)
        finally:
            await http.close()
            await mongo.close()
    finally:
        stop_server(proc)
    return SizeResult(size, clones, per_type, load_s, load_store_s, results, "load average " + load_average())


async def quiesce(pid: int, idle: float = 0.15, limit: float = 20.0) -> float:
    """Wait (at most `limit` s) until the store uses less than `idle` of a core over a second, so that its
    own work after the bulk load (checkpoints, eviction) is not charged to the first shape measured."""
    started = time.perf_counter()
    while time.perf_counter() - started < limit:
        before = cpu_seconds(pid)
        await asyncio.sleep(1.0)
        if cpu_seconds(pid) - before < idle:
            break
    return time.perf_counter() - started


async def bench(args: argparse.Namespace, store_uri: str, store_pid: int | None, workdir: Path) -> list[SizeResult]:
    from pymongo import AsyncMongoClient

    database = f"bench_{uuid.uuid4().hex[:8]}" if args.mongodb_uri else "bench"
    registry = SearchRegistry.official()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(store_uri, tz_aware=True, maxPoolSize=16)
    store = MongoResourceStore(client, database, registry.index_keys)
    builder = synthetic.StoredDocs(Extractor(registry))
    per_clone = synthetic.resources_per_clone()
    results: list[SizeResult] = []
    try:
        await store.ensure_indexes()
        next_clone, have = 0, 0
        shapes: list[Shape] | None = None
        for size in args.sizes:
            print(f"\n== size {size:,}: loading (whole Synthea records, ~{per_clone:.0f} resources each) ...",
                  flush=True)
            next_clone, have, seconds, waiting = await load(store, builder, next_clone, have, size, args.batch)
            per_type = {t: await store.database[t].estimated_document_count()
                        async for t in store.stream_types()}
            print(f"  loaded: {have:,} resources, {next_clone} patients in {seconds:.0f} s "
                  f"({have / seconds if seconds else 0:,.0f}/s; the store's inserts took {waiting:.0f} s); "
                  f"Observation {per_type.get('Observation', 0):,}", flush=True)
            if shapes is None:  # the same queries at every size: made from clones loaded at the first one
                step = max(1, next_clone // args.targets)
                shapes = build_shapes(list(range(0, next_clone, step))[: args.targets], next_clone,
                                      args.default_count)
                if args.only:
                    shapes = [s for s in shapes if s.key in args.only]
            if store_pid is not None:
                settled = await quiesce(store_pid)
                print(f"  store idle after {settled:.0f} s (WiredTiger settles after bulk inserts)", flush=True)
            print(f"  server on the store; {len(shapes)} shapes x {args.duration:g} s per side, "
                  f"{args.concurrency} clients ...", flush=True)
            results.append(await measure_size(args, store_uri, store_pid, database, workdir, shapes, have,
                                              next_clone, per_type, seconds, waiting))
    finally:
        if args.mongodb_uri:
            await client.drop_database(database)
        await client.close()
    return results


# ----------------------------------------------------------------------------------------------- report

def report(results: list[SizeResult], args: argparse.Namespace) -> str:
    lines: list[str] = []

    def cpu(p: Phase, process: str) -> str:
        return f"{p.cpu_ms_per_op(process):.1f}" if process in p.cpu_s else "n/a"

    def others(p: Phase) -> str:
        return f"{p.cpu_percent().get('others', 0.0):.0f}%"

    for size in results:
        lines += [
            (f"### {size.size:,} resources ({size.clones} patients; Observation {size.per_type.get('Observation', 0):,}; "
            f"loaded in {size.load_s:.0f} s); {size.uptime} at the end"),
            "",
            ("| shape | results server = floor (match+incl) | server req/s | floor req/s | thr. ratio | server p50 / p99 ms "
            "| floor p50 / p99 ms | p50 ratio | CPU ms/req server, store (server side) | store CPU ms/req (floor) "
            "| others (% of a core) server, floor |"),
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in size.shapes:
            s, f = r.server, r.floor
            counts = sorted({(c[0], c[1]) for c in r.counts})
            shown = (f"{counts[0][0]}+{counts[0][1]}" if len(counts) == 1 else
                     f"{min(c[0] for c in counts)}..{max(c[0] for c in counts)}+"
                     f"{min(c[1] for c in counts)}..{max(c[1] for c in counts)}")
            ok = "yes" if not r.mismatches else f"NO ({r.mismatches} differ{'; ' + r.server_error if r.server_error else ''})"
            thr = s.rate / f.rate if f.rate else float("nan")
            lat = s.pct(50) / f.pct(50) if f.latencies_ms and s.latencies_ms else float("nan")
            errors = f" ({s.errors} errors)" if s.errors else ""
            lines.append(
                f"| {r.shape.label} | {ok}: {shown} | {s.rate:,.1f}{errors} | {f.rate:,.1f} | {thr:.2f} | "
                f"{s.pct(50):,.1f} / {s.pct(99):,.1f} | {f.pct(50):,.1f} / {f.pct(99):,.1f} | {lat:.2f} | "
                f"{cpu(s, 'server')}, {cpu(s, 'store')} | {cpu(f, 'store')} | {others(s)}, {others(f)} |")
        lines.append("")
    if len(results) > 1:
        first, last = results[0], results[-1]
        lines += [
            (f"### Growth of p50 latency, {first.size:,} -> {last.size:,} resources (goal < {GROWTH_GOAL}x for "
            "selective shapes)"),
            "",
            ("| shape | kind | server p50 ms | growth | floor p50 ms | growth | store CPU ms/req, server side "
            "| store CPU ms/req, floor |"),
            "|---|---|---|---|---|---|---|---|",
        ]
        for a, b in zip(first.shapes, last.shapes, strict=True):
            gs = b.server.pct(50) / a.server.pct(50) if a.server.latencies_ms and b.server.latencies_ms else float("nan")
            gf = b.floor.pct(50) / a.floor.pct(50) if a.floor.latencies_ms and b.floor.latencies_ms else float("nan")
            mark = "" if a.shape.kind != "selective" else (" ok" if gs < GROWTH_GOAL else " OVER")
            lines.append(f"| {a.shape.label} | {a.shape.kind} | {a.server.pct(50):,.1f} -> {b.server.pct(50):,.1f} | "
                         f"{gs:.2f}x{mark} | {a.floor.pct(50):,.1f} -> {b.floor.pct(50):,.1f} | {gf:.2f}x | "
                         f"{cpu(a.server, 'store')} -> {cpu(b.server, 'store')} | "
                         f"{cpu(a.floor, 'store')} -> {cpu(b.floor, 'store')} |")
        lines.append("")
    lines.append("### What the server sends to the store (one query per shape, at the last size)")
    lines.append("")
    for r in results[-1].shapes:
        lines.append(f"{r.shape.label}: `{r.shape.queries[0].path}`")
        lines += [f"    {c}" for c in r.queries_log]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000",
                        help="store sizes in resources, growing one store (10000,100000)")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent clients, server and floor (8)")
    parser.add_argument("--duration", type=float, default=6.0, help="timed seconds per shape for each side (6)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved server/floor slices per shape (2)")
    parser.add_argument("--warmup", type=float, default=0.5, help="untimed seconds per shape and side (0.5)")
    parser.add_argument("--targets", type=int, default=16, help="patients the selective queries are about (16)")
    parser.add_argument("--batch", type=int, default=4000, help="resources per insert_many batch (4000)")
    parser.add_argument("--only", help="comma-separated shape keys to run (name,identifier,obs-date,include,"
                                       "revinclude,chain,has)")
    parser.add_argument("--client", choices=("auto", "aiohttp", "httpx"), default="auto")
    parser.add_argument("--mongodb-uri", help="use this MongoDB (a throw-away database) instead of the embedded store")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, data)")
    args = parser.parse_args(argv)
    args.sizes = sorted(int(s) for s in args.sizes.split(",") if s.strip())
    args.only = set(args.only.split(",")) if args.only else None
    args.rounds = max(1, args.rounds)
    args.default_count = 50  # the server's FHIR_DEFAULT_PAGE_SIZE default (the bench does not set it)

    started = time.perf_counter()
    print(f"{os.cpu_count()} CPUs; store: {store_description(args)}; server: fhir-server "
          f"{version_of('fhir-server')}; Python {sys.version.split()[0]}; load average {load_average()}", flush=True)
    outcome = run_on_store(args, "fhir-bench-search-", bench)
    if outcome is None:
        return 1
    results, workdir = outcome
    print()
    print(report(results, args))
    print(f"\n(total {time.perf_counter() - started:.0f} s{'; logs in ' + str(workdir) if args.keep else ''})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
