"""`fhir-server load PATH…`: load FHIR data into a running server over its REST API.

Files: Bundle JSON (`.json`, `.json.gz`) — transactions and batches are posted as they are, any other
Bundle or a single resource becomes a transaction —, and NDJSON (`.ndjson`, `.ndjson.gz`, one resource
per line, as Bulk export writes them). Directories are walked. Files load in parallel; a failed file does
not stop the others, and ends the command with a non-zero status.

Authentication: with `--token` (or `FHIR_TOKEN`) every request carries `Authorization: Bearer <token>`;
a server with `FHIR_AUTH=on` needs a token whose scopes allow writing what is loaded (e.g. a backend
client's `system/*.cruds`; docs/accounts.md shows how to get one with the demo accounts).

Atomicity: each Bundle file is one transaction (a batch: entry by entry, as its type says). An NDJSON
file is read and checked in full (JSON, resourceType) before anything is sent, then sent as transactions
of `--chunk` resources with their ids kept (PUT), so a re-run after a failure overwrites, never
duplicates.
"""

from __future__ import annotations

import argparse
import gzip
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

SUFFIXES = (".json", ".json.gz", ".ndjson", ".ndjson.gz")


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("load", help="load Bundle / NDJSON files into a running server")
    parser.add_argument("paths", nargs="+", type=Path, help="files or directories")
    parser.add_argument("--url", default=os.environ.get("FHIR_BASE_URL") or "http://localhost:8080/fhir",
                        help="the server's FHIR base URL (default: FHIR_BASE_URL or http://localhost:8080/fhir)")
    parser.add_argument("--jobs", type=int, default=4, help="files loaded at once (default 4)")
    parser.add_argument("--chunk", type=int, default=500, help="resources per transaction for NDJSON (default 500)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for one request")
    parser.add_argument("--token", default=os.environ.get("FHIR_TOKEN"),
                        help="a SMART access token with write scopes, sent as a Bearer token when the server has "
                             "FHIR_AUTH=on (default: FHIR_TOKEN; prefer the variable: argv is visible to `ps`)")
    parser.set_defaults(run=run)


@dataclass
class FileResult:
    path: Path
    resources: int = 0
    errors: list[str] = field(default_factory=list)


class LoadError(Exception):
    """A file that cannot be loaded; the message says why."""


def files_under(paths: list[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.name.endswith(SUFFIXES)))
        elif path.is_file():
            found.append(path)
        else:
            raise LoadError(f"{path}: no such file or directory")
    return found


def _read(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if path.name.endswith(".gz") else data


def _as_transaction(resources: list[dict[str, Any]]) -> dict[str, Any]:
    entries = []
    for resource in resources:
        resource_type, id = resource.get("resourceType"), resource.get("id")
        if id:
            entries.append({"resource": resource, "request": {"method": "PUT", "url": f"{resource_type}/{id}"}})
        else:
            entries.append({"resource": resource, "request": {"method": "POST", "url": resource_type}})
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def bundles_of(path: Path, chunk: int) -> list[bytes]:
    """The request bodies that load `path`; raises LoadError before any is sent if the file is unusable."""
    data = _read(path)
    if path.name.endswith((".ndjson", ".ndjson.gz")):
        resources = []
        for number, line in enumerate(data.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                resource = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise LoadError(f"line {number}: not JSON ({exc})") from None
            if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
                raise LoadError(f"line {number}: not a FHIR resource")
            resources.append(resource)
        return [orjson.dumps(_as_transaction(resources[i: i + chunk])) for i in range(0, len(resources), chunk)]
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise LoadError(f"not JSON ({exc})") from None
    if not isinstance(document, dict) or not isinstance(document.get("resourceType"), str):
        raise LoadError("not a FHIR resource")
    if document["resourceType"] == "Bundle" and document.get("type") in ("transaction", "batch"):
        return [data]  # sent byte for byte: decimals and all
    if document["resourceType"] == "Bundle":
        return [orjson.dumps(_as_transaction([e["resource"] for e in document.get("entry", []) if "resource" in e]))]
    return [orjson.dumps(_as_transaction([document]))]


def load_file(client: httpx.Client, path: Path, chunk: int) -> FileResult:
    result = FileResult(path)
    try:
        bodies = bundles_of(path, chunk)
    except (LoadError, OSError) as exc:
        result.errors.append(str(exc))
        return result
    for body in bodies:
        try:
            response = client.post("", content=body, headers={"Content-Type": "application/fhir+json"})
        except httpx.HTTPError as exc:
            result.errors.append(f"request failed: {exc}")
            return result
        if response.status_code != 200:
            result.errors.append(_diagnostics(response))
            return result
        for entry in response.json().get("entry", []):
            status = entry.get("response", {}).get("status", "")
            if status.startswith(("2", "3")):
                result.resources += 1
            else:
                outcome = entry.get("response", {}).get("outcome", {})
                issue = (outcome.get("issue") or [{}])[0]
                result.errors.append(f"{status}: {issue.get('diagnostics', '')}")
    return result


def _diagnostics(response: httpx.Response) -> str:
    try:
        issue = response.json()["issue"][0]
        return f"HTTP {response.status_code}: {issue.get('diagnostics', '')}"
    except (ValueError, KeyError, IndexError, TypeError):
        return f"HTTP {response.status_code}: {response.text[:200]}"


class Progress:
    """One status line on stderr (rewritten in place on a terminal)."""

    def __init__(self, total: int) -> None:
        self.total, self.done, self.resources = total, 0, 0
        self.started = time.monotonic()
        self.lock = threading.Lock()
        self.tty = sys.stderr.isatty()

    def advance(self, result: FileResult) -> None:
        with self.lock:
            self.done += 1
            self.resources += result.resources
            rate = self.resources / max(time.monotonic() - self.started, 1e-9)
            bar = "#" * int(30 * self.done / max(self.total, 1))
            line = f"[{bar:<30}] {self.done}/{self.total} files, {self.resources} resources, {rate:.0f}/s"
            print(("\r" if self.tty else "") + line, end="" if self.tty else "\n", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    try:
        paths = files_under(args.paths)
    except LoadError as exc:
        print(f"fhir-server load: {exc}", file=sys.stderr)
        return 2
    if not paths:
        print("fhir-server load: no .json, .json.gz, .ndjson or .ndjson.gz files found", file=sys.stderr)
        return 2
    progress = Progress(len(paths))
    limits = httpx.Limits(max_connections=args.jobs)
    headers = {"Authorization": f"Bearer {args.token.strip()}"} if args.token else {}
    with httpx.Client(base_url=args.url.rstrip("/"), timeout=args.timeout, limits=limits, headers=headers) as client, \
            ThreadPoolExecutor(max(1, args.jobs)) as pool:
        futures = [pool.submit(load_file, client, path, args.chunk) for path in paths]
        results = []
        for future in futures:
            result = future.result()
            progress.advance(result)
            results.append(result)
    elapsed = time.monotonic() - progress.started
    if progress.tty:
        print(file=sys.stderr)
    loaded = sum(r.resources for r in results)
    failed = [r for r in results if r.errors]
    print(f"loaded {loaded} resources from {len(results) - len(failed)}/{len(results)} files in {elapsed:.1f} s "
          f"({loaded / max(elapsed, 1e-9):.0f} resources/s)")
    for result in failed:
        print(f"  {result.path}: {len(result.errors)} error(s); first: {result.errors[0]}")
    return 1 if failed else 0
