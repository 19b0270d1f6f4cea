"""What the benchmarks share: the load generator's HTTP clients, CPU accounting, timed phases, the
server and store processes, py-spy profiling, and running one benchmark against a fresh store.

Each bench script measures one thing against a floor on the same store in the same run (bench/RESULTS.md);
this module is the scaffolding they would otherwise each repeat.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from fhir_server.db import embedded  # noqa: E402

FHIR_JSON = "application/fhir+json"

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


def uvloop_module() -> Any:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop


def version_of(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "?"


def load_average() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def store_description(args: argparse.Namespace) -> str:
    return "external MongoDB" if args.mongodb_uri else f"embedded SecantusDB {version_of('SecantusDB')}"


BenchFn = Callable[[argparse.Namespace, str, "int | None", Path], Awaitable[Any]]


def run_on_store(args: argparse.Namespace, prefix: str, bench: BenchFn) -> tuple[Any, Path] | None:
    """Run `bench(args, store_uri, store_pid, workdir)` on uvloop (when installed) against `--mongodb-uri`
    or a fresh embedded store in a temporary directory, and stop the store afterwards. On failure it says
    what went wrong, keeps the logs and returns None; the directory is removed unless `--keep`."""
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    store = None
    try:
        if args.mongodb_uri:
            uri, store_pid = args.mongodb_uri, None
        else:
            store = embedded.start(workdir / "store", log_file=workdir / "store.log")
            uri, store_pid = store.uri, store.process.pid
        loop = uvloop_module()
        runner = asyncio.Runner(loop_factory=loop.new_event_loop) if loop else asyncio.Runner()
        with runner:
            results = runner.run(bench(args, uri, store_pid, workdir))
    except Exception as exc:  # a measurement tool: say what went wrong, and keep the logs
        import traceback

        traceback.print_exc()
        print(f"bench failed: {type(exc).__name__}: {exc}\nlogs in {workdir}", file=sys.stderr)
        args.keep = True
        return None
    finally:
        if store is not None:
            store.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return results, workdir
