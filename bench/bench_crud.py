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
import itertools
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from fhir_server.db import embedded  # noqa: E402

SYNTHEA = ROOT.parent / "shared" / "fhir" / "synthea"
READ_TARGET = 0.5
CREATE_TARGET = 0.3
FHIR_JSON = "application/fhir+json"

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


# ------------------------------------------------------------------------------------------- clients

@dataclass
class Reply:
    status: int
    body: bytes
    location: str | None


class AiohttpClient:
    name = "aiohttp"

    def __init__(self, base: str, connections: int, headers: dict[str, str] | None = None) -> None:
        import aiohttp

        self._base = base
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=connections, limit_per_host=connections, force_close=False),
            timeout=aiohttp.ClientTimeout(total=60), skip_auto_headers=("User-Agent",), headers=headers)

    async def get(self, path: str) -> Reply:
        async with self._session.get(self._base + path, headers={"Accept": FHIR_JSON}) as r:
            return Reply(r.status, await r.read(), r.headers.get("Location"))

    async def post(self, path: str, body: bytes) -> Reply:
        async with self._session.post(self._base + path, data=body,
                                      headers={"Content-Type": FHIR_JSON, "Accept": FHIR_JSON}) as r:
            return Reply(r.status, await r.read(), r.headers.get("Location"))

    async def close(self) -> None:
        await self._session.close()


class HttpxClient:
    name = "httpx"

    def __init__(self, base: str, connections: int, headers: dict[str, str] | None = None) -> None:
        import httpx

        self._client = httpx.AsyncClient(
            base_url=base, http1=True, http2=False, timeout=60, headers=headers,
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections))

    async def get(self, path: str) -> Reply:
        r = await self._client.get(path, headers={"Accept": FHIR_JSON})
        return Reply(r.status_code, r.content, r.headers.get("location"))

    async def post(self, path: str, body: bytes) -> Reply:
        r = await self._client.post(path, content=body, headers={"Content-Type": FHIR_JSON, "Accept": FHIR_JSON})
        return Reply(r.status_code, r.content, r.headers.get("location"))

    async def close(self) -> None:
        await self._client.aclose()


def http_client(kind: str, base: str, connections: int,
                headers: dict[str, str] | None = None) -> AiohttpClient | HttpxClient:
    if kind in ("auto", "aiohttp"):
        try:
            import aiohttp  # noqa: F401
        except ImportError:
            if kind == "aiohttp":
                raise
        else:
            return AiohttpClient(base, connections, headers)
    return HttpxClient(base, connections, headers)


async def bench_token(store_uri: str, database: str, base: str) -> dict[str, str]:
    """With `--auth`: a backend client and a `system/*.cruds` access token, written where the server's
    token endpoint writes them, so every request pays the real per-request token check."""
    import secrets
    from datetime import UTC, datetime, timedelta

    from pymongo import AsyncMongoClient

    from fhir_server.db.auth_store import AuthStore, Client, Grant

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(store_uri, tz_aware=True)
    try:
        store = AuthStore(client[database])
        await store.put_client(Client("bench", "Benchmark", "backend", "system/*.cruds"))
        secret = secrets.token_urlsafe(32)
        await store.save_token(secret, "access", Grant("bench", "system/*.cruds", base + "/fhir"),
                               datetime.now(UTC), timedelta(hours=6))
    finally:
        await client.close()
    return {"Authorization": f"Bearer {secret}"}


# ------------------------------------------------------------------------------------------ measuring

_TICK = float(os.sysconf("SC_CLK_TCK"))


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of a process so far (this process when `pid` is None)."""
    if pid is None:
        t = os.times()
        return t.user + t.system
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICK
    except (OSError, IndexError, ValueError):
        return 0.0


def machine_busy_seconds() -> float:
    """CPU seconds all processes of the machine have used so far (every state but idle and iowait)."""
    try:
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return 0.0
    user, nice, system, idle, iowait, irq, softirq = values[:7]
    return (user + nice + system + irq + softirq) / _TICK


@dataclass
class Phase:
    """One kind of measurement, accumulated over the rounds it ran in."""

    name: str
    ops: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    cpu_s: dict[str, float] = field(default_factory=dict)  # process -> CPU seconds while this phase ran
    first_error: str | None = None

    @property
    def rate(self) -> float:
        return self.ops / self.seconds if self.seconds else 0.0

    def pct(self, p: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        data = sorted(self.latencies_ms)
        return data[min(len(data) - 1, max(0, round(p / 100 * len(data)) - 1))]

    def cpu_percent(self) -> dict[str, float]:
        return {k: 100 * v / self.seconds for k, v in self.cpu_s.items()} if self.seconds else {}

    def cpu_ms_per_op(self, process: str) -> float:
        return 1000 * self.cpu_s.get(process, 0.0) / self.ops if self.ops else float("nan")


class CpuWatch:
    """CPU seconds each of our processes, and everything else on the machine, used inside the block."""

    def __init__(self, pids: dict[str, int | None], phase: Phase) -> None:
        self.pids = pids
        self.phase = phase

    def __enter__(self) -> CpuWatch:
        self._c0 = {k: cpu_seconds(p) for k, p in self.pids.items()}
        self._m0 = machine_busy_seconds()
        return self

    def __exit__(self, *exc: object) -> None:
        ours = 0.0
        for k, p in self.pids.items():
            used = cpu_seconds(p) - self._c0[k]
            ours += used
            self.phase.cpu_s[k] = self.phase.cpu_s.get(k, 0.0) + used
        others = max(0.0, machine_busy_seconds() - self._m0 - ours)
        self.phase.cpu_s["others"] = self.phase.cpu_s.get("others", 0.0) + others


async def run_items(phase: Phase, items: Iterable[Any], op: Callable[[Any], Awaitable[bool]], workers: int) -> None:
    """`workers` workers each take the next item and await `op` on it, until the items run out."""
    it = iter(items)

    async def worker() -> None:
        for item in it:
            t = time.perf_counter()
            ok = await op(item)
            phase.latencies_ms.append((time.perf_counter() - t) * 1000)
            phase.ops += 1
            if not ok:
                phase.errors += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(workers)))
    phase.seconds += time.perf_counter() - t0


async def run_for(phase: Phase, seconds: float, max_ops: int | None, op: Callable[[], Awaitable[bool]],
                  workers: int) -> None:
    """`workers` workers each await `op` in a loop until `seconds` have passed (or `max_ops` were issued)."""
    deadline = time.perf_counter() + seconds
    budget: Iterable[int] = itertools.count() if max_ops is None else range(max_ops)
    tickets = iter(budget)

    async def worker() -> None:
        for _ in tickets:
            t = time.perf_counter()
            if t >= deadline:
                return
            ok = await op()
            phase.latencies_ms.append((time.perf_counter() - t) * 1000)
            phase.ops += 1
            if not ok:
                phase.errors += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(workers)))
    phase.seconds += time.perf_counter() - t0


def chunks(items: list[Any], parts: int) -> list[list[Any]]:
    size = -(-len(items) // parts)
    return [items[i:i + size] for i in range(0, len(items), size)]


# ------------------------------------------------------------------------------------------- processes

def start_server(store_uri: str, database: str, workdir: Path,
                 auth: str | None = None) -> tuple[subprocess.Popen[bytes], str, Path]:
    port = embedded.free_port()
    log = workdir / "server.log"
    env = {**os.environ, "FHIR_MONGODB_URI": store_uri, "FHIR_DATABASE": database, "FHIR_LOG_LEVEL": "warning",
           "FHIR_DATA_DIR": str(workdir / "server-data"), "PYTHONUNBUFFERED": "1",
           "FHIR_AUTH": auth or os.environ.get("FHIR_AUTH", "off")}
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "fhir_server.cli", "serve", "--host", "127.0.0.1",
                                 "--port", str(port)], cwd=ROOT, env=env, stdout=out, stderr=out,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    return proc, f"http://127.0.0.1:{port}", log


async def wait_ready(base: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 90.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=base, timeout=2) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited with status {proc.returncode}; see {log}:\n"
                                   + log.read_text(errors="replace")[-3000:])
            try:
                if (await client.get("/health/ready")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"the server was not ready within {timeout:.0f} s; see {log}")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)  # uvicorn shuts down gracefully (the lifespan closes the Mongo client)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def py_spy() -> str | None:
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


class Profiler:
    """py-spy attached to the server process for the duration of a block (raw collapsed stacks)."""

    def __init__(self, pid: int, out: Path) -> None:
        self.pid = pid
        self.out = out

    def __enter__(self) -> Profiler:
        exe = py_spy()
        if exe is None:
            raise RuntimeError("--profile needs py-spy (pip install py-spy)")
        self.proc = subprocess.Popen([exe, "record", "--pid", str(self.pid), "--rate", "250", "--format", "raw",
                                      "--output", str(self.out), "--nonblocking"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)  # let it attach
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def summarise_profile(path: Path, top: int = 20) -> str:
    """Self time by function and inclusive time by frame, in % of the server's busy samples."""
    self_time: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    if not path.exists():
        return f"(no profile written to {path})"
    for line in path.read_text().splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack or not count_s.isdigit():
            continue
        count = int(count_s)
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";")]
        total += count
        leaf = frames[-1]
        self_time[leaf] = self_time.get(leaf, 0) + count
        for f in set(frames):
            inclusive[f] = inclusive.get(f, 0) + count
    if not total:
        return "(no samples)"
    out = [f"{total} samples", "", "self time (leaf functions):"]
    out += [f"  {100 * c / total:5.1f}%  {f}" for f, c in sorted(self_time.items(), key=lambda x: -x[1])[:top]]
    out += ["", "inclusive time (frames in fhir_server, starlette/fastapi, pymongo, uvicorn):"]
    interesting = ("fhir_server", "starlette", "fastapi", "pymongo", "uvicorn", "bson", "pydantic", "fhir")
    ranked = [(f, c) for f, c in sorted(inclusive.items(), key=lambda x: -x[1]) if any(k in f for k in interesting)]
    out += [f"  {100 * c / total:5.1f}%  {f}" for f, c in ranked[: top * 2]]
    return "\n".join(out)


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
            return Results(http.name, "uvloop" if _uvloop() else "asyncio", args.n, args.rounds,
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


def _uvloop() -> Any:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop


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

    workdir = Path(tempfile.mkdtemp(prefix="fhir-bench-"))
    started = time.perf_counter()
    where = "external MongoDB" if args.mongodb_uri else f"embedded SecantusDB {_version('SecantusDB')}"
    print(f"{os.cpu_count()} CPUs; store: {where}; auth: {'SMART token on every request' if args.auth else 'off'}; "
          f"server: fhir-server {_version('fhir-server')}; "
          f"Python {sys.version.split()[0]}", flush=True)
    store = None
    try:
        if args.mongodb_uri:
            uri, store_pid = args.mongodb_uri, None
        else:
            store = embedded.start(workdir / "store", log_file=workdir / "store.log")
            uri, store_pid = store.uri, store.process.pid
        loop = _uvloop()
        runner = asyncio.Runner(loop_factory=loop.new_event_loop) if loop else asyncio.Runner()
        with runner:
            results = runner.run(bench(args, uri, store_pid, workdir))
    except Exception as exc:  # a measurement tool: say what went wrong, and keep the logs
        print(f"bench failed: {type(exc).__name__}: {exc}\nlogs in {workdir}", file=sys.stderr)
        args.keep = True
        return 1
    finally:
        if store is not None:
            store.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print()
    print(report(results))
    if results.profile:
        print()
        print(results.profile)
    print(f"\n(total {time.perf_counter() - started:.0f} s{'; logs in ' + str(workdir) if args.keep else ''})")
    return 0


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "?"


if __name__ == "__main__":
    sys.exit(main())
