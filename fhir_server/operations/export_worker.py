"""The background side of Bulk `$export` (HL7 Bulk Data IG 2.0): claim a job, stream each type from a
cursor into NDJSON files in GridFS, beat a heartbeat, and publish the manifest's outputs.

One worker task runs per server instance. A job left `running` by a server that stopped is claimed again
once its heartbeat is `FHIR_EXPORT_STALE_SECONDS` old and started over (its partial files are deleted), so
polling always ends. Expired and cancelled jobs are removed with their files.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

from fhir_server.db.jobs import JobStore
from fhir_server.errors import FhirError
from fhir_server.search.filters import FilterContext, all_of, any_of
from fhir_server.search.parse import Parser
from fhir_server.search.translate import Translator
from fhir_server.services import Services

log = logging.getLogger("fhir_server.export")
CHUNK = 256 * 1024
HEARTBEAT_SECONDS = 2.0


class Cancelled(Exception):
    """The job was cancelled (or taken over) while this worker ran it."""


class ExportWorker:
    def __init__(self, services: Services, jobs: JobStore, poll_seconds: float = 1.0) -> None:
        self.services = services
        self.jobs = jobs
        self.owner = str(uuid.uuid4())
        self.poll_seconds = poll_seconds
        self.wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="bulk-export-worker")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def _loop(self) -> None:
        stale = timedelta(seconds=self.services.settings.export_stale_seconds)
        while True:
            try:
                now = datetime.now(UTC)
                for job_id in await self.jobs.expired(now):
                    await self.jobs.remove(job_id)
                job = await self.jobs.claim(self.owner, now, stale)
                if job is not None:
                    await self._run(job)
                    continue
            except asyncio.CancelledError:
                raise
            except Exception:  # a store hiccup must not end the worker
                log.exception("bulk export worker iteration failed")
            self.wake.clear()
            try:
                await asyncio.wait_for(self.wake.wait(), timeout=self.poll_seconds)
            except TimeoutError:
                pass

    async def _run(self, job: dict[str, Any]) -> None:
        job_id = job["_id"]
        await self.jobs.delete_files(job_id)  # a restarted job begins again from nothing
        try:
            outputs = []
            plan = await self._plan(job)
            for index, (resource_type, criteria) in enumerate(plan, start=1):
                progress = f"type {index} of {len(plan)}: {resource_type}"
                outputs.extend(await self._export_type(job, resource_type, criteria, progress))
            done = {"status": "completed", "output": outputs, "completed": datetime.now(UTC),
                    "progress": "complete"}
            if not await self.jobs.update(job_id, self.owner, done):
                raise Cancelled
        except Cancelled:
            await self.jobs.delete_files(job_id)
        except FhirError as exc:
            message = exc.issues[0].diagnostics if exc.issues else "failed"
            await self.jobs.update(job_id, self.owner, {"status": "failed", "error_message": message})
        except Exception as exc:
            log.exception("bulk export %s failed", job_id)
            await self.jobs.update(job_id, self.owner, {"status": "failed", "error_message": str(exc)})

    async def _plan(self, job: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        """Each type to export with its filter: level (system, patient, group), _since and _typeFilter."""
        services = self.services
        present = {t async for t in services.store.stream_types() if t in services.registry}
        types = sorted(set(job["types"]) & present) if job.get("types") else sorted(present)
        if job.get("readable") is not None:  # what the requesting token may read in full (export.py)
            types = [t for t in types if t in set(job["readable"])]
        base: dict[str, Any] = {}
        if job["level"] in ("patient", "group"):
            compartment = set(_compartment_types())
            types = [t for t in types if t in compartment]
            base = {"pc": {"$exists": True}}
            if job["level"] == "group":
                base = {"pc": {"$in": job.get("members", [])}}
        if job.get("since"):
            base = {**base, "ts": {"$gte": job["since"]}}
        plan = []
        filters_by_type: dict[str, list[str]] = job.get("type_filters") or {}
        for resource_type in types:
            criteria = base
            if resource_type in filters_by_type:
                criteria = all_of([base, await self._type_filter(resource_type, filters_by_type[resource_type])])
            plan.append((resource_type, criteria))
        return plan

    async def _type_filter(self, resource_type: str, queries: list[str]) -> dict[str, Any]:
        from urllib.parse import parse_qsl

        settings = self.services.settings
        parser = Parser(self.services.search_registry, self.services.registry.types, True, settings.max_page_size,
                        settings.default_page_size)
        translator = Translator(self.services.search_registry, self.services.store,
                                FilterContext(tuple(b for b in (settings.base_url,) if b), datetime.now(UTC)))
        options = []
        for query in queries:
            parsed = parser.parse(resource_type, parse_qsl(query, keep_blank_values=True))
            options.append(await translator.query_filter(resource_type, parsed))
        return any_of(options)

    async def _export_type(self, job: dict[str, Any], resource_type: str, criteria: dict[str, Any],
                           progress: str) -> list[dict[str, Any]]:
        limit = self.services.settings.export_file_max_bytes
        scan = self.services.store.scan_raw(resource_type, criteria).__aiter__()
        outputs: list[dict[str, Any]] = []
        pending: list[bytes | None] = []  # a resource read past the end of the previous file
        part = 0
        last_beat = asyncio.get_running_loop().time()
        while True:
            counted = [0]

            async def lines() -> AsyncIterator[bytes]:
                nonlocal last_beat
                buffer, size = bytearray(), 0
                while True:
                    raw = pending.pop() if pending else await anext(scan, None)
                    if raw is None:
                        break
                    if size and size + len(raw) + 1 > limit:
                        pending.append(raw)  # starts the next file
                        break
                    buffer += raw + b"\n"
                    size += len(raw) + 1
                    counted[0] += 1
                    if len(buffer) >= CHUNK:
                        yield bytes(buffer)
                        buffer.clear()
                    now = asyncio.get_running_loop().time()
                    if now - last_beat > HEARTBEAT_SECONDS:
                        last_beat = now
                        alive = await self.jobs.update(job["_id"], self.owner, {
                            "heartbeat": datetime.now(UTC), "progress": f"{progress}, {counted[0]} in file {part + 1}"})
                        if not alive:
                            raise Cancelled
                if buffer:
                    yield bytes(buffer)

            part += 1
            file_id, size = await self.jobs.write_file(job["_id"], f"{resource_type}-{part}.ndjson", lines())
            if counted[0]:
                outputs.append({"type": resource_type, "file": file_id, "count": counted[0], "bytes": size})
            else:
                await self.jobs.delete_files_by_id(file_id)
            if not pending:
                return outputs


def _compartment_types() -> list[str]:
    from fhir_server.search.registry import patient_compartment

    return [*patient_compartment(), "Patient"]
