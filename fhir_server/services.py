"""The long-lived parts a request needs, built once in the app's lifespan and passed down explicitly."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from fhir_server.config import Settings
from fhir_server.db.auth_store import AuthStore
from fhir_server.db.jobs import JobStore
from fhir_server.db.store import ResourceStore
from fhir_server.errors import Issue
from fhir_server.model.registry import ResourceRegistry
from fhir_server.search.extract import Extractor
from fhir_server.search.registry import SearchRegistry

if TYPE_CHECKING:
    from fhir_server.operations.export_worker import ExportWorker


class Validator(Protocol):
    def validate(self, resource: dict[str, Any]) -> list[Issue]:
        """Issues found in `resource`; any with severity `error` rejects the write."""


@dataclass
class Services:
    settings: Settings
    store: ResourceStore
    validator: Validator
    registry: ResourceRegistry
    search_registry: SearchRegistry
    extractor: Extractor
    jobs: JobStore
    auth: AuthStore
    export_worker: ExportWorker | None = None
    authorization_server: Any = None  # auth/authlib_adapter.SmartAuthorizationServer, built by auth/routes.start
