"""Bulk export jobs and their files, kept in MongoDB so any server instance can serve them.

Jobs live in the `bulk_jobs` collection; NDJSON files in GridFS (`bulk_files` bucket). A running job is
claimed by one instance and kept alive with a heartbeat; a job whose heartbeat stops (its server died) is
claimed again by whichever instance looks next, so a client never polls forever.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

from gridfs import AsyncGridFSBucket
from gridfs.errors import NoFile
from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

JOBS = "bulk_jobs"
BUCKET = "bulk_files"


class JobStore:
    def __init__(self, database: AsyncDatabase[dict[str, Any]]) -> None:
        self._jobs = database[JOBS]
        self._files = AsyncGridFSBucket(database, bucket_name=BUCKET)
        self._db = database

    async def create(self, job: dict[str, Any]) -> None:
        await self._jobs.insert_one(job)

    async def get(self, job_id: str) -> dict[str, Any] | None:
        return await self._jobs.find_one({"_id": job_id})

    async def update(self, job_id: str, owner: str, changes: dict[str, Any]) -> bool:
        """Apply `changes` if `owner` still holds the job (False: it was cancelled or taken over)."""
        result = await self._jobs.update_one({"_id": job_id, "owner": owner, "status": "running"}, {"$set": changes})
        return result.matched_count == 1

    async def claim(self, owner: str, now: datetime, stale_after: timedelta) -> dict[str, Any] | None:
        """Take one queued job, or a running one whose owner stopped beating; None if there is none."""
        return await self._jobs.find_one_and_update(
            {"$or": [{"status": "queued"}, {"status": "running", "heartbeat": {"$lt": now - stale_after}}]},
            {"$set": {"status": "running", "owner": owner, "heartbeat": now, "output": [], "progress": ""},
             "$inc": {"attempts": 1}},
            sort=[("created", 1)], return_document=ReturnDocument.AFTER)

    async def cancel(self, job_id: str) -> bool:
        result = await self._jobs.update_one({"_id": job_id, "status": {"$in": ["queued", "running", "completed",
                                                                             "failed"]}},
                                             {"$set": {"status": "cancelled"}})
        return result.matched_count == 1

    async def expired(self, now: datetime) -> list[str]:
        cursor = self._jobs.find({"$or": [{"expires": {"$lt": now}}, {"status": "cancelled"}]}, {"_id": 1})
        return [doc["_id"] async for doc in cursor]

    async def remove(self, job_id: str) -> None:
        await self.delete_files(job_id)
        await self._jobs.delete_one({"_id": job_id})

    async def delete_files(self, job_id: str) -> None:
        async for grid_out in self._files.find({"metadata.job": job_id}):
            try:
                await self._files.delete(grid_out._id)
            except NoFile:
                continue

    async def delete_files_by_id(self, file_id: Any) -> None:
        try:
            await self._files.delete(file_id)
        except NoFile:
            return

    async def write_file(self, job_id: str, name: str, chunks: AsyncIterator[bytes]) -> tuple[Any, int]:
        """Stream `chunks` into one GridFS file; returns (file id, bytes written)."""
        stream = self._files.open_upload_stream(name, metadata={"job": job_id, "contentType": "application/fhir+ndjson"})
        size = 0
        try:
            async for chunk in chunks:
                await stream.write(chunk)
                size += len(chunk)
        except BaseException:
            await stream.abort()
            raise
        await stream.close()
        return stream._id, size

    async def open_file(self, job_id: str, file_id: Any) -> Any | None:
        """A readable GridFS stream for one file of a job (None if it is not that job's)."""
        try:
            grid_out = await self._files.open_download_stream(file_id)
        except NoFile:
            return None
        if (grid_out.metadata or {}).get("job") != job_id:
            return None
        return grid_out
