#!/usr/bin/env python
"""CRUD throughput and latency of the FHIR server, as ratios against a raw PyMongo floor on the same store.

One run, one store:
1. starts a fresh embedded store (SecantusDB, its own process) and the FHIR server (its own process,
   `python -m fhir_server.cli serve`), and waits for `GET /health/ready`;
2. creates `--n` Patients (the Synthea Patients of shared/fhir/synthea, ids removed, names, identifiers and
   birth dates varied) with `POST /fhir/Patient` at `--create-concurrency` concurrent clients;
3. measures the floor on the same store from this process with `pymongo.AsyncMongoClient`: `insert_one` of
   the very documents the server stored (copied under new `_id`s into another collection of the same
   database) at the same concurrency, and `find_one({"_id": id})` over the loaded ids;
4. measures `GET /fhir/Patient/{id}` over the loaded ids, and the floor's `find_one`, at
   `--read-concurrency` clients for `--duration` s each;
5. prints the table and the ratios server/floor against the targets (reads >= 0.5, creates >= 0.3), plus
   an informational row: the server's own create pattern (find_one, then a transaction of two inserts into
   the current and history collections) replayed with bare PyMongo;
6. stops the server and the store.

Server and floor run in interleaved rounds (`--rounds`), so both see the same background load on a shared
machine. It is a measurement, not a test: it exits 0 whatever the figures (1 only if it could not run).
The load generator is one asyncio process on uvloop (when installed) with a keep-alive connection pool:
aiohttp when installed (cheapest per request), else httpx; the floor uses PyMongo's async client in the same
process and loop, so both sides pay a comparable client cost. Method and figures: bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import gzip
import json
import os
import random
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/harness.py, when run as a script

from harness import (  # noqa: E402
    CpuWatch,
    Phase,
    Profiler,
    bench_token,
    chunks,
    http_client,
    run_for,
    run_items,
    run_on_store,
    start_server,
    stop_server,
    store_description,
    summarise_profile,
    uvloop_module,
    version_of,
    wait_ready,
)

SYNTHEA = ROOT.parent / "shared" / "fhir" / "synthea"
READ_TARGET = 0.5
CREATE_TARGET = 0.3

# --------------------------------------------------------------------------------------------- bodies

_FALLBACK_PATIENT: dict[str, Any] = {
    "resourceType": "Patient",
    "identifier": [{"system": "http://polmed.co.za/member", "value": "M000000"}],
    "name": [{"use": "official", "family": "Mokoena", "given": ["Thandi", "Naledi"], "prefix": ["Ms."]}],
    "telecom": [{"system": "phone", "value": "+27 82 555 0100", "use": "mobile"}],
    "gender": "female",
    "birthDate": "1984-03-12",
    "address": [{"line": ["12 Church Street"], "city": "Pretoria", "postalCode": "0002", "country": "ZA"}],
    "maritalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus", "code": "M"}]},
    "communication": [{"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "en-ZA"}]}}],
}


def patient_templates() -> list[dict[str, Any]]:
    """The Patient of every Synthea bundle in shared/, without its id (a small built-in one if absent)."""
    templates = []
    for path in sorted(SYNTHEA.glob("*.json*")):
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            bundle = json.load(f)
        for entry in bundle.get("entry", []):
            resource = entry.get("resource", {})
            if resource.get("resourceType") == "Patient":
                resource = copy.deepcopy(resource)
                resource.pop("id", None)
                resource.pop("meta", None)
                templates.append(resource)
    return templates or [_FALLBACK_PATIENT]


def patient_bodies(count: int, seed: int = 7) -> list[bytes]:
    """`count` distinct Patient bodies: the templates in turn, with a varied family name and identifiers."""
    rng = random.Random(seed)
    templates = patient_templates()
    bodies = []
    for i in range(count):
        p = copy.deepcopy(templates[i % len(templates)])
        for name in p.get("name", []):
            if "family" in name:
                name["family"] = f"{name['family']}{i}"
        for ident in p.get("identifier", []):
            if "value" in ident:
                ident["value"] = f"{ident['value']}-{i}"
        p["birthDate"] = f"{rng.randint(1930, 2020)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        bodies.append(json.dumps(p, separators=(",", ":")).encode())
    return bodies


# ----------------------------------------------------------------------------------------------- bench

@dataclass
class Results:
    client: str
    loop: str
    n: int
    rounds: int
    create_conc: int
    read_conc: int
    server_create: Phase
    floor_insert: Phase
    server_read: Phase
    floor_read: Phase
    floor_pattern: Phase
    indexes: str = ""
    profile: str | None = None


async def bench(args: argparse.Namespace, store_uri: str, store_pid: int | None, workdir: Path) -> Results:
    from pymongo import AsyncMongoClient

    database = f"bench_{uuid.uuid4().hex[:8]}" if args.mongodb_uri else "bench"
    proc, base, log = start_server(store_uri, database, workdir, "on" if args.auth else "off")
    try:
        await wait_ready(base, proc, log)
        headers = await bench_token(store_uri, database, base) if args.auth else None
        pids: dict[str, int | None] = {"server": proc.pid, "store": store_pid, "loadgen": None}
        if store_pid is None:  # an external store's CPU cannot be seen from here
            del pids["store"]
        bodies = patient_bodies(args.n + args.warmup_creates + (args.profile_creates if args.profile else 0))
        http = http_client(args.client, base + "/fhir", max(args.create_concurrency, args.read_concurrency), headers)
        if http.name == "httpx":
            print("WARNING: aiohttp is not installed; httpx's connection pool costs several ms of CPU per request "
                  "at 32 concurrent requests and shares the cores with the server, so the server figures come out "
                  "far too low (see bench/RESULTS.md). `pip install aiohttp` for meaningful ratios.", flush=True)
        mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(store_uri, maxPoolSize=100)
        db = mongo[database]
        patients = db["Patient"]
        floor_coll = db["floor_Patient"]
        pattern_current = db["floor_tx_Patient"]
        pattern_history = db["floor_tx_history"]
        try:
            ids: list[str] = []
            server_create = Phase("server create")
            floor_insert = Phase("floor insert_one")
            server_read = Phase("server read")
            floor_read = Phase("floor find_one")
            floor_pattern = Phase("floor write pattern")

            def creator(phase: Phase, created: list[str]) -> Callable[[bytes], Awaitable[bool]]:
                async def create(body: bytes) -> bool:
                    r = await http.post("/Patient", body)
                    if r.status != 201:
                        if phase.first_error is None:
                            phase.first_error = f"{r.status} {r.body[:500]!r}"
                        return False
                    assert r.location is not None
                    created.append(r.location.split("/Patient/", 1)[1].split("/", 1)[0])
                    return True
                return create

            async def insert(doc: dict[str, Any]) -> bool:
                await floor_coll.insert_one(doc)
                return True

            async def server_pattern(docs: tuple[dict[str, Any], dict[str, Any]]) -> bool:
                """What MongoResourceStore does for a create: read current, then a transaction of 2 inserts."""
                current, history = docs
                await pattern_current.find_one({"_id": current["_id"]}, {"v": 1, "ts": 1, "m": 1, "raw": 1})
                async with mongo.start_session() as session:
                    async def work(s: Any) -> None:
                        await pattern_current.insert_one(current, session=s)
                        await pattern_history.insert_one(history, session=s)
                    await session.with_transaction(work)
                return True

            # -- warm-up: open the connection pools on every hop (HTTP, server->store, bench->store)
            warm = Phase("warm-up")
            await run_items(warm, bodies[: args.warmup_creates], creator(warm, ids), args.create_concurrency)
            if warm.errors == warm.ops:
                raise RuntimeError(f"no Patient could be created: {warm.first_error}")
            await floor_coll.insert_one({"_id": "warm-up"})
            for source, target in ((db["history"], pattern_history), (patients, pattern_current)):
                async for index in await source.list_indexes():  # the write-pattern row keeps the same indexes
                    if index["name"] != "_id_":
                        options = {k: v for k, v in index.items() if k not in ("v", "key", "ns")}
                        await target.create_index(list(index["key"].items()), **options)
            await asyncio.gather(*(mongo.admin.command("ping") for _ in range(args.read_concurrency)))

            # -- creates, in rounds: server POSTs a slice, then the floor inserts copies of what it stored
            timed = bodies[args.warmup_creates: args.warmup_creates + args.n]
            print(f"creates: {args.n} Patients at {args.create_concurrency} clients, in {args.rounds} rounds "
                  f"(server POST, then floor insert_one of the stored documents) ...", flush=True)
            for part in chunks(timed, args.rounds):
                made: list[str] = []
                with CpuWatch(pids, server_create):
                    await run_items(server_create, part, creator(server_create, made), args.create_concurrency)
                ids.extend(made)
                stored = [doc async for doc in patients.find({"_id": {"$in": made}})]
                copies = [{**doc, "_id": str(uuid.uuid4())} for doc in stored]
                with CpuWatch(pids, floor_insert):
                    await run_items(floor_insert, copies, insert, args.create_concurrency)
                if args.write_pattern:
                    entries = {d["i"]: d async for d in db["history"].find({"_id": {"$in": [f"Patient/{i}/1"
                                                                                           for i in made]}})}
                    pairs = []
                    for doc in stored:
                        new_id = str(uuid.uuid4())
                        entry = dict(entries[doc["_id"]])
                        entry.update(_id=f"Patient/{new_id}/1", i=new_id,
                                     k=entry["k"].replace(doc["_id"], new_id))
                        pairs.append(({**doc, "_id": new_id}, entry))
                    with CpuWatch(pids, floor_pattern):
                        await run_items(floor_pattern, pairs, server_pattern, args.create_concurrency)
            if server_create.errors:
                print(f"  {server_create.errors} creates failed; first: {server_create.first_error}", flush=True)

            # -- reads: server GET and floor find_one over the same ids, alternating slices of equal length
            rng = random.Random(11)

            async def get() -> bool:
                r = await http.get(f"/Patient/{rng.choice(ids)}")
                if r.status != 200 and server_read.first_error is None:
                    server_read.first_error = f"{r.status} {r.body[:500]!r}"
                return r.status == 200

            async def find() -> bool:
                return await patients.find_one({"_id": rng.choice(ids)}) is not None

            print(f"reads: {args.read_concurrency} workers, {args.duration:g} s each for server and floor, in "
                  f"{args.rounds} alternating slices (after {args.warmup:g} s warm-up each) ...", flush=True)
            await run_for(Phase("warm-up"), args.warmup, None, get, args.read_concurrency)
            await run_for(Phase("warm-up"), args.warmup, None, find, args.read_concurrency)
            slice_s = args.duration / args.rounds
            slice_max = None if args.max_reads is None else -(-args.max_reads // args.rounds)
            order = [(server_read, get), (floor_read, find)]
            for i in range(args.rounds):
                for phase, op in order if i % 2 == 0 else order[::-1]:
                    with CpuWatch(pids, phase):
                        await run_for(phase, slice_s, slice_max, op, args.read_concurrency)
            for phase in (server_read, floor_read):
                if phase.errors:
                    print(f"  {phase.name}: {phase.errors} failed; first: {phase.first_error}", flush=True)

            indexes = (f"indexes the server made: Patient {len(await patients.index_information())}, "
                       f"history {len(await db['history'].index_information())} (each counting _id)")
            profile = None
            if args.profile:
                profile = await profile_server(args, proc.pid, bodies[args.warmup_creates + args.n:], get,
                                               creator(Phase("profile"), []))
            return Results(http.name, "uvloop" if uvloop_module() else "asyncio", args.n, args.rounds,
                           args.create_concurrency, args.read_concurrency, server_create, floor_insert,
                           server_read, floor_read, floor_pattern, indexes, profile)
        finally:
            await http.close()
            if args.mongodb_uri:  # leave an external server as we found it
                await mongo.drop_database(database)
            await mongo.close()
    finally:
        stop_server(proc)


async def profile_server(args: argparse.Namespace, pid: int, bodies: list[bytes], get: Callable[[], Awaitable[bool]],
                         create: Callable[[bytes], Awaitable[bool]]) -> str:
    """After the measurements (py-spy slows the server): sample the server under read load, then create load."""
    out = Path(args.profile)
    out.mkdir(parents=True, exist_ok=True)
    print(f"profiling the server with py-spy into {out} ...", flush=True)
    with Profiler(pid, out / "read.txt"):
        await run_for(Phase("profile"), args.duration / 2, None, get, args.read_concurrency)
    with Profiler(pid, out / "create.txt"):
        await run_items(Phase("profile"), bodies, create, args.create_concurrency)
    text = (f"== server profile under GET /fhir/Patient/{{id}} ({out / 'read.txt'})\n"
            + summarise_profile(out / "read.txt")
            + f"\n\n== server profile under POST /fhir/Patient ({out / 'create.txt'})\n"
            + summarise_profile(out / "create.txt"))
    (out / "summary.txt").write_text(text + "\n")
    return text


def report(r: Results) -> str:
    def cpu(p: Phase) -> str:
        return " ".join(f"{k} {v:.0f}%" for k, v in p.cpu_percent().items())

    def row(label: str, p: Phase, conc: int, process: str) -> str:
        return (f"| {label} | {conc} | {p.ops} | {p.rate:,.0f}/s | {p.pct(50):.1f} | {p.pct(99):.1f} | "
                f"{p.errors} | {p.cpu_ms_per_op(process):.2f} | {store_ms(p)} | {cpu(p)} |")

    def store_ms(p: Phase) -> str:
        return f"{p.cpu_ms_per_op('store'):.2f}" if "store" in p.cpu_s else "n/a"

    read_ratio = r.server_read.rate / r.floor_read.rate if r.floor_read.rate else 0.0
    create_ratio = r.server_create.rate / r.floor_insert.rate if r.floor_insert.rate else 0.0

    def verdict(ratio: float, target: float) -> str:
        return f"{ratio:.3f}  (target >= {target}: {'MET' if ratio >= target else 'NOT MET'})"

    lines = [
        f"load generator: {r.client} + pymongo.AsyncMongoClient on {r.loop}, one process; {r.n} Patients; "
        f"creates at {r.create_conc}, reads at {r.read_conc} concurrent clients; {r.rounds} interleaved rounds",
        r.indexes,
        "",
        "| measurement | conc. | ops | throughput | p50 ms | p99 ms | errors | client-side CPU ms/op "
        "| store CPU ms/op | CPU while running (100% = one core) |",
        "|---|---|---|---|---|---|---|---|---|---|",
        row("server GET /fhir/Patient/{id}", r.server_read, r.read_conc, "server"),
        row("floor find_one({_id})", r.floor_read, r.read_conc, "loadgen"),
        row("server POST /fhir/Patient", r.server_create, r.create_conc, "server"),
        row("floor insert_one", r.floor_insert, r.create_conc, "loadgen"),
    ]
    if r.floor_pattern.ops:
        lines.append(row("(info) floor, the server's write pattern", r.floor_pattern, r.create_conc, "loadgen"))
    lines += [
        "",
        "(client-side CPU: the FHIR server process for server rows, the bench's PyMongo for floor rows)",
        "",
        f"reads   server/floor = {verdict(read_ratio, READ_TARGET)}",
        f"creates server/floor = {verdict(create_ratio, CREATE_TARGET)}",
    ]
    if r.floor_pattern.ops:
        lines.append(f"(info) creates server / the server's write pattern done with bare PyMongo = "
                     f"{r.server_create.rate / r.floor_pattern.rate:.2f}; that pattern / insert_one = "
                     f"{r.floor_pattern.rate / r.floor_insert.rate:.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="Patients to create (2000)")
    parser.add_argument("--create-concurrency", type=int, default=8, help="concurrent creating clients (8)")
    parser.add_argument("--read-concurrency", type=int, default=32, help="concurrent reading clients (32)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of reads, for each of server and floor (10)")
    parser.add_argument("--max-reads", type=int, default=None, help="also stop each read phase after this many requests")
    parser.add_argument("--rounds", type=int, default=8,
                        help="interleave server and floor in this many rounds, so both see the same machine (8)")
    parser.add_argument("--warmup", type=float, default=1.0, help="untimed seconds before the read phases (1)")
    parser.add_argument("--warmup-creates", type=int, default=32, help="untimed creates before the timed ones (32)")
    parser.add_argument("--client", choices=("auto", "aiohttp", "httpx"), default="auto",
                        help="HTTP client: aiohttp when installed (auto), else httpx")
    parser.add_argument("--no-write-pattern", dest="write_pattern", action="store_false",
                        help="skip the informational floor row that replays the server's create pattern "
                             "(find_one + a transaction of 2 inserts) with bare PyMongo")
    parser.add_argument("--profile", metavar="DIR", help="afterwards, profile the server with py-spy into DIR")
    parser.add_argument("--profile-creates", type=int, default=500, help="creates to profile with --profile (500)")
    parser.add_argument("--mongodb-uri", help="measure against this MongoDB (a throw-away database in it) instead "
                                              "of a fresh embedded store")
    parser.add_argument("--auth", action="store_true",
                        help="run the server with FHIR_AUTH=on and send a SMART access token on every request")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, data)")
    args = parser.parse_args(argv)
    args.rounds = max(1, args.rounds)

    started = time.perf_counter()
    print(f"{os.cpu_count()} CPUs; store: {store_description(args)}; "
          f"auth: {'SMART token on every request' if args.auth else 'off'}; "
          f"server: fhir-server {version_of('fhir-server')}; Python {sys.version.split()[0]}", flush=True)
    outcome = run_on_store(args, "fhir-bench-", bench)
    if outcome is None:
        return 1
    results, workdir = outcome
    print()
    print(report(results))
    if results.profile:
        print()
        print(results.profile)
    print(f"\n(total {time.perf_counter() - started:.0f} s{'; logs in ' + str(workdir) if args.keep else ''})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
