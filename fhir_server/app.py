"""create_app(settings): the ASGI application, its error handlers and its lifespan.

The lifespan builds everything long-lived in one place (database client, store, validator, registry,
CapabilityStatement) and puts it on `app.state.services`. With no `FHIR_MONGODB_URI` it also starts the
embedded store as a separate process and stops it on shutdown.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from pymongo import AsyncMongoClient
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fhir_server import demo, fhirjson
from fhir_server.config import Settings
from fhir_server.db import embedded
from fhir_server.db.auth_store import AuthStore
from fhir_server.db.jobs import JobStore
from fhir_server.db.mongo_store import MongoResourceStore
from fhir_server.errors import FhirError, Issue, operation_outcome
from fhir_server.model.registry import ResourceRegistry
from fhir_server.model.validate import ResourceValidator
from fhir_server.operations.export_worker import ExportWorker
from fhir_server.rest import capabilities, health
from fhir_server.rest.router import router
from fhir_server.auth import routes as auth_routes
from fhir_server.auth.authlib_adapter import FormError
from fhir_server.auth.cors import SmartCors
from fhir_server.admin import routes as admin_routes
from fhir_server.search import custom
from fhir_server.search.extract import Extractor
from fhir_server.search.registry import SearchRegistry
from fhir_server.services import Services

log = logging.getLogger("fhir_server")
_OUTCOME_TYPE = "application/fhir+json; charset=utf-8"


def outcome_response(status: int, issues: list[Issue], headers: dict[str, str] | None = None) -> Response:
    return Response(fhirjson.dumps(operation_outcome(issues)), status_code=status, headers=headers,
                    media_type=_OUTCOME_TYPE)


async def _fhir_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, FhirError)
    if exc.status >= 500:
        log.error("%s %s -> %s: %s", request.method, request.url.path, exc.status, exc)
    else:
        log.info("%s %s -> %s: %s", request.method, request.url.path, exc.status, exc)
    return outcome_response(exc.status, exc.issues, exc.headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        issue = Issue("not-found", f"No FHIR endpoint at {request.method} {request.url.path}")
    elif exc.status_code == 405:
        issue = Issue("not-supported", f"{request.method} is not supported on {request.url.path}")
    else:
        issue = Issue("processing", str(exc.detail))
    return outcome_response(exc.status_code, [issue], dict(exc.headers or {}))


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    issues = [Issue("invalid", str(e.get("msg")), expression=(".".join(str(p) for p in e.get("loc", ())),))
              for e in exc.errors()]
    return outcome_response(400, issues or [Issue("invalid", "The request is invalid")])


class CatchAll:
    """Outermost ASGI layer: an unexpected error becomes a logged 500 OperationOutcome, and the connection
    stays usable (Starlette's own last-resort handler re-raises into the server, which drops it)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if started:
                raise
            response = outcome_response(500, [Issue("exception", "The server failed to process the request; "
                                                                 "the error has been logged")])
            await response(scope, receive, send)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    started = datetime.now(UTC).isoformat(timespec="seconds")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store_process = None
        uri = settings.mongodb_uri
        if not uri:
            store_process = embedded.start(settings.data_dir.resolve() / "db", settings.embedded_port,
                                           log_file=settings.data_dir.resolve() / "store.log")
            uri = store_process.uri
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri, tz_aware=True, maxPoolSize=64)
        try:
            search_registry = SearchRegistry.official()
            store = MongoResourceStore(client, settings.database, search_registry.index_keys)
            await store.ensure_indexes()
            await custom.load(store, search_registry)
            await store.prepare_existing()
            registry = ResourceRegistry()
            bases = (settings.base_url.rstrip("/"),) if settings.base_url else ()
            auth_store = AuthStore(store.database, settings.auth_cache_seconds)
            await auth_store.ensure_indexes()
            services = Services(settings, store, ResourceValidator(), registry, search_registry,
                                Extractor(search_registry, bases), JobStore(store.database), auth_store)
            await auth_routes.start(services)
            services.export_worker = ExportWorker(services, services.jobs)
            services.export_worker.start()
            app.state.services = services
            app.state.capability_statement = _capability_cache(services, started)
            if settings.seed_demo:
                await demo.seed(services, settings.base_url or f"http://localhost:{settings.port}/fhir")
            yield
        finally:
            worker = getattr(getattr(app.state, "services", None), "export_worker", None)
            if worker is not None:
                await worker.stop()
            await client.close()
            if store_process is not None:
                store_process.stop()

    app = FastAPI(title="FHIR R4 server", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.include_router(auth_routes.router)
    app.include_router(router, prefix="/fhir")
    app.include_router(health.router)
    app.include_router(admin_routes.router)
    app.add_exception_handler(FhirError, _fhir_error)
    app.add_exception_handler(FormError, auth_routes.form_refused)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_middleware(SmartCors)  # SMART CORS rules (auth/cors.py); inside CatchAll
    app.add_middleware(CatchAll)
    return app


def _capability_cache(services: Services, date: str) -> Callable[[str], dict[str, Any]]:
    """The CapabilityStatement changes only with the base URL clients use and the search registry's
    version (custom SearchParameters); build it once per pair."""
    built: dict[tuple[str, int], dict[str, Any]] = {}

    def get(base_url: str) -> dict[str, Any]:
        key = (base_url, services.search_registry.version())
        if key not in built:
            built.clear()
            built[key] = capabilities.capability_statement(services.settings, services.registry,
                                                           services.search_registry, base_url, date)
        return built[key]

    return get
