"""What an interaction returns: status, headers and a body that is either stored bytes or JSON data."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from fhir_server import fhirjson
from fhir_server.db.store import StoredVersion
from fhir_server.errors import Issue, operation_outcome

FHIR_JSON = "application/fhir+json"


@dataclass
class FhirResponse:
    status: int
    body: bytes | dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def render(self, pretty: bool) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return fhirjson.pretty(self.body) if pretty else self.body
        return fhirjson.dumps(self.body, pretty=pretty)


def etag(version: int) -> str:
    return f'W/"{version}"'


def http_date(moment: datetime) -> str:
    return format_datetime(moment.astimezone(UTC), usegmt=True)


def version_headers(stored: StoredVersion, base_url: str, location: bool = False) -> dict[str, str]:
    """ETag and Last-Modified for a version; `Location` (the version URL) after a write."""
    headers = {"ETag": etag(stored.version), "Last-Modified": http_date(stored.last_updated)}
    if location:
        headers["Location"] = f"{base_url}/{stored.resource_type}/{stored.id}/_history/{stored.version}"
    return headers


def information(diagnostics: str) -> dict[str, Any]:
    """A success OperationOutcome, for `Prefer: return=OperationOutcome`."""
    return operation_outcome([Issue("informational", diagnostics, severity="information")])


def written(stored: StoredVersion, status: int, base_url: str, prefer_return: str | None, message: str) -> FhirResponse:
    """The answer to a successful create/update/patch, shaped by `Prefer: return=`."""
    headers = version_headers(stored, base_url, location=True)
    if prefer_return == "minimal":
        return FhirResponse(status, None, headers)
    if prefer_return == "OperationOutcome":
        return FhirResponse(status, information(message), headers)
    return FhirResponse(status, stored.raw, headers)
