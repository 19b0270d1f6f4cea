#!/usr/bin/env python
"""Ingest and Bulk `$export` throughput of the FHIR server, as ratios against raw PyMongo floors on the same store.

One run, one fresh embedded store (SecantusDB, its own process); the FHIR server always runs as its own
process (`python -m fhir_server.cli serve`), started afresh on its own database for each measurement:

1. **HTTP transactions**: the 20 Synthea transaction Bundles of shared/fhir/synthea (decompressed first,
   4,909 entries) are POSTed to `POST /fhir` by `--clients` (4) concurrent aiohttp clients, each taking
   the next Bundle; resources/s over the wall time of the 20 requests.
2. **`fhir-server load`**: the same 20 (decompressed) files into a fresh database, with
   `python -m fhir_server.cli load DIR --url … --jobs 4` run as a subprocess; resources/s from its wall
   time (process start to exit) and from the time it reports itself.
3. **Floor**: the very documents the server stored in (1) — current versions read back from the per-type
   collections and the history entries, grouped by the Bundle they came from — inserted by 4 concurrent
   PyMongo writers, one Bundle at a time: one `insert_many` per collection the Bundle touches (so per
   Bundle ≈ 10 `insert_many` into the type collections + 1 into `history`), into a fresh database. Three
   variants: `bare` (collections with only `_id`; the floor of the ratios), `indexed` (the collections
   carry the indexes the server creates, made beforehand by the server's own `MongoResourceStore.prepare`)
   and `indexed+txn` (the same, each Bundle's inserts inside one MongoDB transaction, which is what the
   server does). The last two split the gap into "storage design on this store" and "server overhead".
   For the server runs too the indexes are created before the clock starts (the same `prepare`), so no
   side pays for index builds.
   Steps 1–3 repeat `--rounds` times (2), the order alternating, so all sides see the same background load.
4. **`$export`**: a database of ≥ `--export-size` (100,000) resources is filled quickly with whole Synthea
   records cloned under new ids (bench/synthetic.py: the documents the server itself would write, current
   versions + history, inserted with `insert_many`); a server is started on it; `GET /fhir/$export` with
   `Prefer: respond-async` is kicked off, the status URL polled every `--poll` s (0.25) until 200, and every
   file of the manifest downloaded (4 at a time, streamed, lines counted). Floor: a raw PyMongo cursor scan
   of the same collections in the same order (`find({}, {"raw": 1}).sort("_id")`, batch 500, as the
   server's `scan_raw`). Informational: the scan plus writing the NDJSON into GridFS with bare PyMongo
   (what the server's worker does). The server's RSS (VmRSS from /proc, every 0.2 s) is sampled before,
   during and after the export, with the store size (dbStats), to show that memory stays flat.
   Export and floor alternate `--export-rounds` times (1).

It is a measurement, not a test: it exits 0 whatever the figures (1 only if it could not run). `--profile
DIR` afterwards samples the server with py-spy under one more ingest and one more export. Method and
figures: bench/RESULTS.md ("Ingest and $export").
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import os
import resource
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for _p in (str(ROOT), str(HERE)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import synthetic
from harness import (
    CpuWatch,
    Phase,
    Profiler,
    load_average,
    run_on_store,
    start_server,
    stop_server,
    store_description,
    summarise_profile,
    version_of,
    wait_ready,
)

from fhir_server.db.mongo_store import HISTORY, MongoResourceStore
from fhir_server.search.extract import Extractor
from fhir_server.search.registry import SearchRegistry

SYNTHEA = ROOT.parent / "shared" / "fhir" / "synthea"
FHIR_JSON = "application/fhir+json"


# -------------------------------------------------------------------------------------------- inputs

@dataclass
class Bundle:
    name: str
    body: bytes
    entries: int
    types: list[str]


def synthea_bundles(workdir: Path) -> tuple[list[Bundle], Path]:
    """The Synthea transaction Bundles, decompressed into workdir/synthea (for the CLI) and in memory."""
    target = workdir / "synthea"
    target.mkdir(parents=True, exist_ok=True)
    out = []
    for path in sorted(SYNTHEA.glob("*.json.gz")):
        body = gzip.decompress(path.read_bytes())
        name = path.name.removesuffix(".gz")
        (target / name).write_bytes(body)
        doc = orjson.loads(body)
        entries = doc.get("entry", [])
        out.append(Bundle(name, body, len(entries), sorted({e["resource"]["resourceType"] for e in entries})))
    if not out:
        raise RuntimeError(f"no Synthea bundles in {SYNTHEA}")
    return out, target


# ---------------------------------------------------------------------------------------- processes

class RssSampler:
    """VmRSS of some processes every `every` s from /proc (a thread), plus VmHWM at the end."""

    def __init__(self, pids: dict[str, int], every: float = 0.2) -> None:
        self.pids = pids
        self.every = every
        self.samples: dict[str, list[int]] = {k: [] for k in pids}
        self.times: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def status_kb(pid: int, key: str) -> int:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith(key + ":"):
                        return int(line.split()[1])
        except (OSError, ValueError, IndexError):
            pass
        return 0

    def _run(self) -> None:
        while not self._stop.is_set():
            self.times.append(time.perf_counter())
            for k, pid in self.pids.items():
                self.samples[k].append(self.status_kb(pid, "VmRSS"))
            self._stop.wait(self.every)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def peak_mb(self, k: str) -> float:
        return max(self.samples[k], default=0) / 1024

    def quarter_peaks_mb(self, k: str, start: float, end: float) -> list[float]:
        """The peak in each quarter of [start, end]: flat memory shows as four similar figures."""
        peaks = [0.0] * 4
        span = max(end - start, 1e-9)
        for t, kb in zip(self.times, self.samples[k]):
            if start <= t <= end:
                q = min(3, int(4 * (t - start) / span))
                peaks[q] = max(peaks[q], kb / 1024)
        return peaks


def rss_mb(pid: int) -> float:
    return RssSampler.status_kb(pid, "VmRSS") / 1024


class Server:
    """A FHIR server process on one database of the store (started, ready, stopped by `async with`)."""

    def __init__(self, uri: str, database: str, workdir: Path) -> None:
        self.uri, self.database, self.workdir = uri, database, workdir

    async def __aenter__(self) -> Server:
        self.proc, self.base, self.log = start_server(self.uri, self.database, self.workdir)
        try:
            await wait_ready(self.base, self.proc, self.log)
        except BaseException:
            stop_server(self.proc)
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        stop_server(self.proc)

    @property
    def pid(self) -> int:
        return self.proc.pid


# -------------------------------------------------------------------------------------------- ingest

@dataclass
class IngestRow:
    label: str
    phase: Phase
    note: str = ""
    reported_s: float | None = None  # the CLI's own elapsed time


async def prepare_indexes(client: Any, database: str, registry: SearchRegistry, types: set[str]) -> None:
    """The indexes the server makes for these types (its own `MongoResourceStore`), before the clock starts."""
    store = MongoResourceStore(client, database, registry.index_keys)
    await store.ensure_indexes()
    for t in sorted(types):
        await store.prepare(t)


async def http_ingest(server: Server, bundles: list[Bundle], clients: int, phase: Phase,
                      store_pid: int | None) -> dict[str, list[tuple[str, str]]]:
    """POST every Bundle to /fhir with `clients` concurrent clients; returns Bundle name -> [(type, id)]."""
    import aiohttp

    made: dict[str, list[tuple[str, str]]] = {}
    queue = iter(bundles)
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients),
                                    timeout=aiohttp.ClientTimeout(total=600), skip_auto_headers=("User-Agent",))
    try:
        async with session.get(server.base + "/fhir/metadata") as r:  # opens a connection, untimed
            await r.read()

        async def worker() -> None:
            for bundle in queue:
                t = time.perf_counter()
                async with session.post(server.base + "/fhir", data=bundle.body,
                                        headers={"Content-Type": FHIR_JSON, "Accept": FHIR_JSON}) as r:
                    body = await r.read()
                phase.latencies_ms.append(1000 * (time.perf_counter() - t))
                if r.status != 200:
                    phase.errors += 1
                    phase.first_error = phase.first_error or f"{bundle.name}: {r.status} {body[:300]!r}"
                    continue
                ids = []
                for entry in orjson.loads(body).get("entry", []):
                    parts = entry.get("response", {}).get("location", "").split("/")
                    if len(parts) >= 4 and parts[-2] == "_history":
                        ids.append((parts[-4], parts[-3]))
                made[bundle.name] = ids
                phase.ops += len(ids)

        pids: dict[str, int | None] = {"server": server.pid, "store": store_pid, "loadgen": None}
        with CpuWatch(pids, phase):
            t0 = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(clients)))
            phase.seconds += time.perf_counter() - t0
    finally:
        await session.close()
    return made


def cli_load(server: Server, directory: Path, jobs: int, phase: Phase, store_pid: int | None) -> float | None:
    """`python -m fhir_server.cli load DIR --url … --jobs N`; wall time from spawn to exit."""
    import re

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    pids: dict[str, int | None] = {"server": server.pid, "store": store_pid}
    with CpuWatch(pids, phase):
        t0 = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "fhir_server.cli", "load", str(directory), "--url",
                               server.base + "/fhir", "--jobs", str(jobs)], cwd=ROOT, capture_output=True,
                              text=True, stdin=subprocess.DEVNULL, check=False)
        phase.seconds += time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    phase.cpu_s["cli"] = phase.cpu_s.get("cli", 0.0) + (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    phase.cpu_s["others"] = max(0.0, phase.cpu_s.get("others", 0.0) - phase.cpu_s["cli"])  # CpuWatch counted it there
    m = re.search(r"loaded (\d+) resources from (\d+)/(\d+) files in ([\d.]+) s", done.stdout)
    if done.returncode != 0 or not m:
        phase.errors += 1
        phase.first_error = phase.first_error or f"exit {done.returncode}: {done.stdout[-500:]} {done.stderr[-500:]}"
    if m:
        phase.ops += int(m.group(1))
        return float(m.group(4))
    return None


async def read_back(client: Any, database: str, made: dict[str, list[tuple[str, str]]]
                    ) -> list[list[tuple[str, list[dict[str, Any]]]]]:
    """What the server stored for each Bundle: [(collection, documents)] for the type collections and history."""
    db = client[database]
    out = []
    for name in sorted(made):
        by_type: dict[str, list[str]] = defaultdict(list)
        for t, i in made[name]:
            by_type[t].append(i)
        groups: list[tuple[str, list[dict[str, Any]]]] = []
        keys = []
        for t, ids in sorted(by_type.items()):
            docs = [d async for d in db[t].find({"_id": {"$in": ids}})]
            groups.append((t, docs))
            keys += [f"{t}/{i}/1" for i in ids]
        history = [d async for d in db[HISTORY].find({"_id": {"$in": keys}})]
        groups.append((HISTORY, history))
        out.append(groups)
    return out


async def floor_ingest(client: Any, database: str, per_bundle: list[list[tuple[str, list[dict[str, Any]]]]],
                       writers: int, transaction: bool, phase: Phase, store_pid: int | None) -> None:
    """4 concurrent writers, one Bundle at a time: one insert_many per collection of the Bundle."""
    db = client[database]
    queue = iter(per_bundle)

    async def worker() -> None:
        for groups in queue:
            t = time.perf_counter()
            if transaction:
                async with client.start_session() as session:
                    async def work(s: Any) -> None:
                        for coll, docs in groups:
                            await db[coll].insert_many(docs, ordered=True, session=s)
                    await session.with_transaction(work)
            else:
                for coll, docs in groups:
                    await db[coll].insert_many(docs, ordered=False)
            phase.latencies_ms.append(1000 * (time.perf_counter() - t))
            phase.ops += sum(len(docs) for coll, docs in groups if coll != HISTORY)

    with CpuWatch({"store": store_pid, "loadgen": None}, phase):
        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(writers)))
        phase.seconds += time.perf_counter() - t0


# -------------------------------------------------------------------------------------------- export

async def fill_export_store(client: Any, database: str, registry: SearchRegistry, want: int, batch_size: int
                            ) -> tuple[int, int, float]:
    """Whole cloned Synthea records until `want` resources: server-shaped documents via insert_many.
    Returns (resources, clones, seconds)."""
    store = MongoResourceStore(client, database, registry.index_keys)
    await store.ensure_indexes()
    builder = synthetic.StoredDocs(Extractor(registry))
    db = store.database  # with the server's codec options (FHIR decimals as Decimal128)
    prepared: set[str] = set()

    def build(c: int, room: int) -> tuple[dict[str, list[dict[str, Any]]], list[dict[str, Any]], int, int]:
        current: dict[str, list[dict[str, Any]]] = defaultdict(list)
        history: list[dict[str, Any]] = []
        n = 0
        while n < min(batch_size, room):
            for resource_type, res in synthetic.clone(c):
                doc, entry = builder.build(resource_type, res)
                current[resource_type].append(doc)
                history.append(entry)
                n += 1
            c += 1
        return current, history, n, c

    started = time.perf_counter()
    have, next_clone = 0, 0
    pending = asyncio.ensure_future(asyncio.to_thread(build, 0, want))
    while True:
        current, history, n, c = await pending
        if not n:
            break
        have += n
        next_clone = c
        pending = asyncio.ensure_future(asyncio.to_thread(build, c, want - have))
        for t in current:
            if t not in prepared:
                await store.prepare(t)
                prepared.add(t)
        await asyncio.gather(*(db[t].insert_many(docs, ordered=False) for t, docs in current.items()),
                             db[HISTORY].insert_many(history, ordered=False))
        print(f"  {have:>8,} resources ({next_clone} clones), {time.perf_counter() - started:4.0f} s", flush=True)
    return have, next_clone, time.perf_counter() - started


@dataclass
class ExportRun:
    resources: int = 0
    files: int = 0
    bytes: int = 0
    to_manifest_s: float = 0.0
    total_s: float = 0.0
    polls: int = 0
    rss_before_mb: float = 0.0
    rss_peak_mb: float = 0.0
    rss_after_mb: float = 0.0
    rss_quarters_mb: list[float] = field(default_factory=list)
    hwm_mb: float = 0.0
    store_rss_before_mb: float = 0.0
    store_rss_peak_mb: float = 0.0
    cpu: Phase = field(default_factory=lambda: Phase("export"))
    manifest_count: int = 0
    error: str | None = None


async def run_export(server: Server, store_pid: int | None, poll: float, downloads: int) -> ExportRun:
    import aiohttp

    out = ExportRun()
    pids = {"server": server.pid}
    if store_pid:
        pids["store"] = store_pid
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3600), skip_auto_headers=("User-Agent",))
    try:
        async with session.get(server.base + "/fhir/metadata") as r:
            await r.read()
        out.rss_before_mb = rss_mb(server.pid)
        out.store_rss_before_mb = rss_mb(store_pid) if store_pid else 0.0
        cpu_pids: dict[str, int | None] = {"server": server.pid, "store": store_pid, "loadgen": None}
        with RssSampler(pids) as rss, CpuWatch(cpu_pids, out.cpu):
            t0 = time.perf_counter()
            async with session.get(server.base + "/fhir/$export",
                                   headers={"Prefer": "respond-async", "Accept": FHIR_JSON}) as r:
                await r.read()
                if r.status != 202:
                    out.error = f"kick-off: {r.status}"
                    return out
                status_url = r.headers["Content-Location"]
            while True:
                async with session.get(status_url, headers={"Accept": FHIR_JSON}) as r:
                    body = await r.read()
                out.polls += 1
                if r.status == 200:
                    manifest = orjson.loads(body)
                    break
                if r.status != 202:
                    out.error = f"status: {r.status} {body[:300]!r}"
                    return out
                await asyncio.sleep(poll)
            out.to_manifest_s = time.perf_counter() - t0
            files = [o["url"] for o in manifest["output"]]
            out.manifest_count = sum(o.get("count", 0) for o in manifest["output"])
            out.files = len(files)
            queue = iter(files)

            async def fetch() -> None:
                for url in queue:
                    async with session.get(url, headers={"Accept": "application/fhir+ndjson"}) as resp:
                        if resp.status != 200:
                            out.error = f"download {url}: {resp.status}"
                            continue
                        tail = b""
                        async for chunk in resp.content.iter_chunked(256 * 1024):
                            out.bytes += len(chunk)
                            out.resources += chunk.count(b"\n")
                            tail = chunk[-1:]
                        if tail and tail != b"\n":
                            out.resources += 1

            await asyncio.gather(*(fetch() for _ in range(downloads)))
            out.total_s = time.perf_counter() - t0
            out.cpu.seconds = out.total_s
            out.cpu.ops = out.resources
        out.rss_peak_mb = rss.peak_mb("server")
        out.rss_quarters_mb = rss.quarter_peaks_mb("server", t0, t0 + out.total_s)
        out.store_rss_peak_mb = rss.peak_mb("store") if store_pid else 0.0
        out.rss_after_mb = rss_mb(server.pid)
        out.hwm_mb = RssSampler.status_kb(server.pid, "VmHWM") / 1024
        # leave the store as it was: the job's GridFS files go (a DELETE cancels and removes them)
        async with session.delete(status_url) as r:
            await r.read()
    finally:
        await session.close()
    return out


@dataclass
class ScanRun:
    label: str
    resources: int = 0
    bytes: int = 0
    seconds: float = 0.0
    cpu: Phase = field(default_factory=lambda: Phase("scan"))


async def floor_scan(client: Any, database: str, types: list[str], store_pid: int | None, gridfs: bool) -> ScanRun:
    """A raw cursor scan of every type collection projecting `raw` (as the server's `scan_raw`); with
    `gridfs`, the NDJSON is also written into a GridFS bucket, one file per type, and removed afterwards."""
    from gridfs import AsyncGridFSBucket
    from pymongo import ASCENDING

    db = client[database]
    run = ScanRun("floor scan + GridFS write" if gridfs else "floor cursor scan")
    bucket = AsyncGridFSBucket(db, bucket_name="bench_floor_files") if gridfs else None
    with CpuWatch({"store": store_pid, "loadgen": None}, run.cpu):
        t0 = time.perf_counter()
        for t in types:
            cursor = db[t].find({}, {"raw": 1}, sort=[("_id", ASCENDING)], batch_size=500)
            if bucket is None:
                async for doc in cursor:
                    run.resources += 1
                    run.bytes += len(doc["raw"]) + 1
                continue
            stream = bucket.open_upload_stream(f"{t}.ndjson")
            buffer = bytearray()
            async for doc in cursor:
                buffer += doc["raw"]
                buffer += b"\n"
                run.resources += 1
                if len(buffer) >= 256 * 1024:
                    run.bytes += len(buffer)
                    await stream.write(bytes(buffer))
                    buffer.clear()
            run.bytes += len(buffer)
            if buffer:
                await stream.write(bytes(buffer))
            await stream.close()
        run.seconds = time.perf_counter() - t0
    run.cpu.seconds, run.cpu.ops = run.seconds, run.resources
    if gridfs:
        await db.drop_collection("bench_floor_files.files")
        await db.drop_collection("bench_floor_files.chunks")
    return run


# ----------------------------------------------------------------------------------------------- bench

@dataclass
class Results:
    bundles: int
    entries: int
    rounds: int
    clients: int
    ingest: dict[str, IngestRow]
    export_size: int = 0
    export_clones: int = 0
    fill_s: float = 0.0
    db_stats: dict[str, float] = field(default_factory=dict)
    exports: list[ExportRun] = field(default_factory=list)
    scans: list[ScanRun] = field(default_factory=list)
    gridfs_scans: list[ScanRun] = field(default_factory=list)
    loads: list[str] = field(default_factory=list)
    per_round: list[dict[str, float]] = field(default_factory=list)  # resources/s of each row in each round
    profile: str | None = None


async def bench(args: argparse.Namespace, uri: str, store_pid: int | None, workdir: Path) -> Results:
    from pymongo import AsyncMongoClient

    registry = SearchRegistry.official()
    bundles, directory = synthea_bundles(workdir)
    all_types = {t for b in bundles for t in b.types}
    entries = sum(b.entries for b in bundles)
    print(f"{len(bundles)} Synthea bundles, {entries} entries, {len(all_types)} types; load average {load_average()}",
          flush=True)
    prefix = f"bi{uuid.uuid4().hex[:6]}_" if args.mongodb_uri else ""
    databases: list[str] = []
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri, maxPoolSize=32)
    rows = {k: IngestRow(label, Phase(k)) for k, label in (
        ("http", f"server: POST /fhir transactions, {args.clients} aiohttp clients"),
        ("cli", f"server: fhir-server load --jobs {args.clients} (wall time of the CLI process)"),
        ("bare", "floor: insert_many per collection per Bundle, `_id` index only"),
        ("indexed", "(info) floor: the same, collections with the server's indexes"),
        ("txn", "(info) floor: the same + indexes, each Bundle in one transaction"))}
    results = Results(len(bundles), entries, args.rounds, args.clients, rows)
    try:
        if not args.skip_ingest:
            for r in range(args.rounds):
                results.loads.append(load_average())
                print(f"\n== ingest round {r + 1}/{args.rounds} (load average {load_average()})", flush=True)
                before = {k: (row.phase.ops, row.phase.seconds) for k, row in rows.items()}
                names = {k: f"{prefix}{k}_{r}" for k in ("http", "cli", "bare", "indexed", "txn")}
                databases += list(names.values())

                async def server_side() -> dict[str, list[tuple[str, str]]]:
                    await prepare_indexes(client, names["http"], registry, all_types)
                    async with Server(uri, names["http"], workdir) as server:
                        made = await http_ingest(server, bundles, args.clients, rows["http"].phase, store_pid)
                    print(f"  HTTP transactions: {sum(map(len, made.values()))} resources", flush=True)
                    await prepare_indexes(client, names["cli"], registry, all_types)
                    async with Server(uri, names["cli"], workdir) as server:
                        reported = cli_load(server, directory, args.clients, rows["cli"].phase, store_pid)
                    if reported is not None:
                        rows["cli"].reported_s = (rows["cli"].reported_s or 0.0) + reported
                    print(f"  fhir-server load: done (its own figure {reported} s)", flush=True)
                    return made

                async def floor_side(per_bundle: list[Any]) -> None:
                    await prepare_indexes(client, names["indexed"], registry, all_types)
                    await prepare_indexes(client, names["txn"], registry, all_types)
                    for t in sorted(all_types | {HISTORY}):  # the bare floor's collections exist too
                        await client[names["bare"]].create_collection(t)
                    for key, tx in (("bare", False), ("indexed", False), ("txn", True)):
                        await floor_ingest(client, names[key], per_bundle, args.clients, tx, rows[key].phase,
                                           store_pid)
                    print("  floors: done", flush=True)

                if r == 0 or r % 2 == 0:
                    made = await server_side()
                    per_bundle = await read_back(client, names["http"], made)
                    await floor_side(per_bundle)
                else:  # the floor goes first in odd rounds, on the documents of the previous round
                    await floor_side(per_bundle)
                    made = await server_side()
                    per_bundle = await read_back(client, names["http"], made)
                results.per_round.append({k: (row.phase.ops - before[k][0]) / (row.phase.seconds - before[k][1])
                                          for k, row in rows.items() if row.phase.seconds > before[k][1]})
                if not args.keep_databases:
                    for name in names.values():
                        await client.drop_database(name)

        if args.export_size > 0:
            name = f"{prefix}export"
            databases.append(name)
            print(f"\n== $export: filling {name} with >= {args.export_size:,} resources (cloned Synthea records, "
                  f"~{synthetic.resources_per_clone():.0f} each) ...", flush=True)
            have, clones, seconds = await fill_export_store(client, name, registry, args.export_size, args.batch)
            results.export_size, results.export_clones, results.fill_s = have, clones, seconds
            stats = await client[name].command("dbStats")
            results.db_stats = {k: float(stats[k]) for k in ("dataSize", "storageSize", "indexSize", "objects")
                                if k in stats}
            types = sorted(n for n in await client[name].list_collection_names() if n[:1].isupper())
            print(f"  {have:,} resources in {seconds:.0f} s; dbStats {results.db_stats}", flush=True)
            async with Server(uri, name, workdir) as server:
                for i in range(args.export_rounds):
                    order = ["export", "floor"] if i % 2 == 0 else ["floor", "export"]
                    for what in order:
                        if what == "export":
                            print(f"  export {i + 1}: kick-off, poll, download (load average {load_average()}) ...",
                                  flush=True)
                            run = await run_export(server, store_pid, args.poll, args.downloads)
                            if run.error:
                                print(f"    ERROR {run.error}", flush=True)
                            results.exports.append(run)
                            print(f"    {run.resources:,} resources, {run.files} files, {run.bytes / 1e6:.0f} MB; "
                                  f"manifest after {run.to_manifest_s:.1f} s, all downloaded after {run.total_s:.1f} s",
                                  flush=True)
                        else:
                            scan = await floor_scan(client, name, types, store_pid, gridfs=False)
                            results.scans.append(scan)
                            print(f"  floor scan: {scan.resources:,} in {scan.seconds:.1f} s", flush=True)
                if args.gridfs_floor:
                    scan = await floor_scan(client, name, types, store_pid, gridfs=True)
                    results.gridfs_scans.append(scan)
                    print(f"  (info) floor scan + GridFS write: {scan.resources:,} in {scan.seconds:.1f} s", flush=True)
                if args.profile:
                    results.profile = await profile(args, server, uri, workdir, bundles, all_types, registry,
                                                    client, prefix, store_pid)
        return results
    finally:
        if args.mongodb_uri or not args.keep_databases:
            for name in databases:
                await client.drop_database(name)
        await client.close()


async def profile(args: argparse.Namespace, export_server: Server, uri: str, workdir: Path, bundles: list[Bundle],
                  types: set[str], registry: SearchRegistry, client: Any, prefix: str, store_pid: int | None) -> str:
    """py-spy on the server: under one more export (of the export store), then under one more HTTP ingest."""
    out = Path(args.profile)
    out.mkdir(parents=True, exist_ok=True)
    print(f"\nprofiling the server with py-spy into {out} ...", flush=True)
    with Profiler(export_server.pid, out / "export.txt"):
        await run_export(export_server, store_pid, args.poll, args.downloads)
    name = f"{prefix}profile_ingest"
    await prepare_indexes(client, name, registry, types)
    try:
        async with Server(uri, name, workdir) as server:
            with Profiler(server.pid, out / "ingest.txt"):
                await http_ingest(server, bundles, args.clients, Phase("profile"), store_pid)
    finally:
        await client.drop_database(name)
    text = (f"== server profile under $export ({out / 'export.txt'})\n" + summarise_profile(out / "export.txt")
            + f"\n\n== server profile under POST /fhir transactions ({out / 'ingest.txt'})\n"
            + summarise_profile(out / "ingest.txt"))
    (out / "summary.txt").write_text(text + "\n")
    return text


# ----------------------------------------------------------------------------------------------- report

def _cpu(p: Phase) -> str:
    return " ".join(f"{k} {v:.0f}%" for k, v in p.cpu_percent().items())


def report(r: Results, args: argparse.Namespace) -> str:
    lines = [f"ingest: {r.bundles} Synthea transaction Bundles ({r.entries} entries) x {r.rounds} rounds, "
             f"{r.clients} concurrent clients/writers; load average per round: {', '.join(r.loads) or '-'}"]
    if r.ingest["http"].phase.ops:
        floor = r.ingest["bare"].phase.rate
        lines += ["", "| measurement | resources | seconds | resources/s | vs floor | p50 / max s per Bundle | "
                  "errors | server CPU ms/resource | store CPU ms/resource | CPU while running (100% = one core) |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for key, row in r.ingest.items():
            p = row.phase
            if not p.ops and not p.errors:
                continue
            lat = (f"{p.pct(50) / 1000:.2f} / {max(p.latencies_ms) / 1000:.2f}" if p.latencies_ms else "-")
            server_ms = f"{p.cpu_ms_per_op('server'):.2f}" if "server" in p.cpu_s else "-"
            lines.append(f"| {row.label} | {p.ops} | {p.seconds:.1f} | {p.rate:,.0f} | "
                         f"{p.rate / floor if floor else 0:.2f} | {lat} | {p.errors} | {server_ms} | "
                         f"{p.cpu_ms_per_op('store'):.2f} | {_cpu(p)} |")
        for i, rates in enumerate(r.per_round, 1):
            lines.append(f"round {i}: " + ", ".join(f"{k} {v:,.0f}/s" for k, v in rates.items())
                         + (f"; server/floor http {rates['http'] / rates['bare']:.2f}, cli {rates['cli'] / rates['bare']:.2f}"
                            if rates.get("bare") and "http" in rates and "cli" in rates else ""))
        cli = r.ingest["cli"]
        if cli.reported_s:
            lines.append(f"\n`fhir-server load` by its own clock (after start-up): "
                         f"{cli.phase.ops / cli.reported_s:,.0f} resources/s "
                         f"({cli.phase.ops / cli.reported_s / floor if floor else 0:.2f} of the floor)")
        ix, tx = r.ingest["indexed"].phase.rate, r.ingest["txn"].phase.rate
        http = r.ingest["http"].phase.rate
        if ix and tx:
            lines.append(f"(info) indexed/bare = {ix / floor:.2f}; indexed+txn/bare = {tx / floor:.2f}; "
                         f"server HTTP / indexed+txn floor = {http / tx:.2f}")
        for row in r.ingest.values():
            if row.phase.first_error:
                lines.append(f"  {row.label}: first error: {row.phase.first_error}")
    if r.exports:
        scan = sum(s.resources for s in r.scans) / sum(s.seconds for s in r.scans) if r.scans else 0.0
        lines += ["", f"$export: {r.export_size:,} resources ({r.export_clones} cloned Synthea records; current "
                  f"versions + as many history entries) filled in {r.fill_s:.0f} s; dbStats: "
                  + ", ".join(f"{k} {v / 1e6:,.0f} MB" if k != "objects" else f"{k} {v:,.0f}"
                              for k, v in r.db_stats.items()),
                  "", "| measurement | resources | MB | seconds | resources/s | vs floor scan | CPU (100% = one core) |",
                  "|---|---|---|---|---|---|---|"]
        for i, e in enumerate(r.exports, 1):
            lines.append(f"| server $export #{i}: kick-off -> manifest | {e.manifest_count:,} | - | "
                         f"{e.to_manifest_s:.1f} | {e.manifest_count / e.to_manifest_s if e.to_manifest_s else 0:,.0f} "
                         f"| {e.manifest_count / e.to_manifest_s / scan if scan and e.to_manifest_s else 0:.2f} | |")
            lines.append(f"| server $export #{i}: kick-off -> all files downloaded | {e.resources:,} | "
                         f"{e.bytes / 1e6:,.0f} | {e.total_s:.1f} | {e.resources / e.total_s if e.total_s else 0:,.0f} "
                         f"| {e.resources / e.total_s / scan if scan and e.total_s else 0:.2f} | {_cpu(e.cpu)} |")
        for s in r.scans:
            lines.append(f"| floor: cursor scan projecting raw | {s.resources:,} | {s.bytes / 1e6:,.0f} | "
                         f"{s.seconds:.1f} | {s.resources / s.seconds:,.0f} | 1.00 | {_cpu(s.cpu)} |")
        for s in r.gridfs_scans:
            lines.append(f"| (info) floor: scan + GridFS write of the NDJSON | {s.resources:,} | {s.bytes / 1e6:,.0f} "
                         f"| {s.seconds:.1f} | {s.resources / s.seconds:,.0f} | "
                         f"{s.resources / s.seconds / scan if scan else 0:.2f} | {_cpu(s.cpu)} |")
        lines += ["", "| server memory (VmRSS) | before export | peak during (0.2 s samples) | after | VmHWM (whole life) |"
                  " peak in each quarter of the export | store RSS before / peak |", "|---|---|---|---|---|---|---|"]
        for i, e in enumerate(r.exports, 1):
            lines.append(f"| export #{i} | {e.rss_before_mb:.0f} MB | {e.rss_peak_mb:.0f} MB | {e.rss_after_mb:.0f} MB "
                         f"| {e.hwm_mb:.0f} MB | {' / '.join(f'{q:.0f}' for q in e.rss_quarters_mb)} MB "
                         f"| {e.store_rss_before_mb:.0f} / {e.store_rss_peak_mb:.0f} MB |")
        for e in r.exports:
            if e.error:
                lines.append(f"  export error: {e.error}")
            if e.manifest_count != e.resources:
                lines.append(f"  NOTE: manifest counts {e.manifest_count} but {e.resources} lines were downloaded")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=4, help="concurrent ingest clients / CLI jobs / floor writers (4)")
    parser.add_argument("--rounds", type=int, default=2, help="ingest rounds, server and floor alternating (2)")
    parser.add_argument("--export-size", type=int, default=100_000, help="resources in the export store (100000; 0 skips)")
    parser.add_argument("--export-rounds", type=int, default=1, help="exports (and floor scans), alternating (1)")
    parser.add_argument("--batch", type=int, default=4000, help="resources per insert_many when filling (4000)")
    parser.add_argument("--poll", type=float, default=0.25, help="seconds between status polls (0.25)")
    parser.add_argument("--downloads", type=int, default=4, help="export files downloaded at once (4)")
    parser.add_argument("--no-gridfs-floor", dest="gridfs_floor", action="store_false",
                        help="skip the informational floor row: scan + write the NDJSON into GridFS")
    parser.add_argument("--skip-ingest", action="store_true", help="only the $export part")
    parser.add_argument("--profile", metavar="DIR", help="afterwards, py-spy the server under an export and an ingest")
    parser.add_argument("--mongodb-uri", help="measure against this MongoDB (throw-away databases) instead of a "
                                              "fresh embedded store")
    parser.add_argument("--keep-databases", action="store_true", help="do not drop the databases after each round")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, data)")
    args = parser.parse_args(argv)
    args.rounds = max(0, args.rounds)

    started = time.perf_counter()
    print(f"{os.cpu_count()} CPUs; load average {load_average()}; store: {store_description(args)}; server: "
          f"fhir-server {version_of('fhir-server')}; Python {sys.version.split()[0]}", flush=True)
    outcome = run_on_store(args, "fhir-bench-ingest-", bench)
    if outcome is None:
        return 1
    results, workdir = outcome
    print()
    print(report(results, args))
    if results.profile:
        print()
        print(results.profile)
    print(f"\n(total {time.perf_counter() - started:.0f} s; load average now {load_average()}"
          f"{'; logs in ' + str(workdir) if args.keep else ''})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
