"""CORS as SMART asks (app-launch.html#considerations-for-cross-origin-resource-sharing-cors-support).

* Any origin may read discovery: `/fhir/metadata`, `/fhir/.well-known/*` and `/auth/jwks`.
* The token, introspection and revocation endpoints and the FHIR API answer only the origins some active
  registered client lists in `allowed_origins` (a browser app registers the origin it runs on). With
  `FHIR_AUTH=off` (development) every origin may use the API.
Other origins get no CORS headers at all, so the browser withholds the response. Bearer tokens, not
cookies, carry authority, so credentials are never allowed. Origin lookups are cached for a short time
(CACHE_SECONDS) so a browser app's requests do not each cost a database query.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fhir_server.db.auth_store import CLIENTS

CLIENT_ENDPOINTS = ("/auth/token", "/auth/introspect", "/auth/revoke")
METHODS = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"
ALLOW_HEADERS = ("Authorization, Content-Type, Accept, Prefer, If-Match, If-None-Match, If-Modified-Since, "
                 "If-None-Exist, X-Request-Id")
EXPOSE_HEADERS = "Location, Content-Location, ETag, Last-Modified, X-Request-Id, WWW-Authenticate"
CACHE_SECONDS = 30
MAX_ORIGIN = 256


def _public(path: str) -> bool:
    return path == "/fhir/metadata" or path.startswith("/fhir/.well-known/") or path == "/auth/jwks"


def _guarded(path: str) -> bool:
    return path in CLIENT_ENDPOINTS or path == "/fhir" or path.startswith("/fhir/")


class SmartCors:
    """ASGI middleware adding CORS headers by the rules above."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._known: dict[str, tuple[float, bool]] = {}

    async def _registered(self, scope: Scope, origin: str) -> bool:
        now = time.monotonic()
        hit = self._known.get(origin)
        if hit is not None and hit[0] > now:
            return hit[1]
        services: Any = getattr(scope["app"].state, "services", None)
        if services is None:
            return False
        if services.settings.auth == "off":
            return True
        doc = await services.auth.database[CLIENTS].find_one({"allowed_origins": origin, "active": True}, {"_id": 1})
        if len(self._known) > 10_000:
            self._known.clear()
        self._known[origin] = (now + CACHE_SECONDS, doc is not None)
        return doc is not None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        path = scope["path"]
        if not origin or len(origin) > MAX_ORIGIN or not (_public(path) or _guarded(path)):
            await self.app(scope, receive, send)
            return
        allow = "*" if _public(path) else (origin if await self._registered(scope, origin) else None)
        if allow is None:
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            preflight = Response(status_code=204, headers={
                "Access-Control-Allow-Origin": allow, "Access-Control-Allow-Methods": METHODS,
                "Access-Control-Allow-Headers": ALLOW_HEADERS, "Access-Control-Max-Age": "600", "Vary": "Origin"})
            await preflight(scope, receive, send)
            return

        async def with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                out = MutableHeaders(scope=message)
                out["Access-Control-Allow-Origin"] = allow
                out["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
                out.add_vary_header("Origin")
            await send(message)

        await self.app(scope, receive, with_cors)
