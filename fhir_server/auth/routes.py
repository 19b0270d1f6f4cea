"""The authorization server's HTTP face: /auth/* and /fhir/.well-known/*.

Each route reads and bounds its body first, then hands a frozen request to authlib in a worker thread
(auth/authlib_adapter.py). The token, introspection and revocation endpoints answer every failure as an
OAuth JSON error (400/401), never with a FHIR OperationOutcome and never with a 500 for bad input.
"""

from __future__ import annotations

import base64
import logging
import os
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import orjson
from authlib.oauth2.rfc6749 import OAuth2Error
from fastapi import APIRouter, Request
from starlette.responses import Response

from fhir_server.auth import authorize, discovery, keys, launch, pages, sessions
from fhir_server.auth.authlib_adapter import FormError, SmartAuthorizationServer, read_form, run_in_worker
from fhir_server.auth.endpoints import build_server
from fhir_server.auth.negotiation import MAX_SCOPE_PARAM
from fhir_server.auth.urls import fhir_base
from fhir_server.services import Services

log = logging.getLogger("fhir_server.auth")
router = APIRouter()
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


async def start(services: Services) -> None:
    """Called once from the app's lifespan: load (or create) the signing key and assemble the server.

    Transport: authlib refuses plain-http URLs except loopback (research P5); TLS is the deployment's
    job (a TLS-terminating proxy, uvicorn `--proxy-headers`). Only when the operator configures an
    explicit `http://` FHIR_BASE_URL on a non-loopback host (a closed test network) is authlib told to
    accept it, via AUTHLIB_INSECURE_TRANSPORT."""
    base = services.settings.base_url
    if base and urlsplit(base).scheme == "http" and urlsplit(base).hostname not in ("localhost", "127.0.0.1", "::1"):
        log.warning("FHIR_BASE_URL is plain http: OAuth runs without TLS (AUTHLIB_INSECURE_TRANSPORT=1)")
        os.environ["AUTHLIB_INSECURE_TRANSPORT"] = "1"
    signing = await keys.load_or_create(services.auth, datetime.now(UTC))
    services.authorization_server = build_server(services, signing)


def server_of(request: Request) -> SmartAuthorizationServer:
    server: SmartAuthorizationServer | None = request.app.state.services.authorization_server
    if server is None:
        raise RuntimeError("the authorization server was not started")
    return server


async def form_refused(request: Request, exc: Exception) -> Response:
    """A sign-in, picker, consent or launcher form that cannot be read (too large, not a form, repeated or
    malformed fields): a plain HTML refusal. The OAuth endpoints catch FormError themselves (JSON errors)."""
    assert isinstance(exc, FormError)
    return pages.message("Request refused", exc.message, exc.status)


def _json(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


def oauth_error(error: str, description: str, status: int = 400) -> Response:
    return _json({"error": error, "error_description": description}, status, NO_STORE)


# --- discovery ------------------------------------------------------------------------------------------
@router.get("/fhir/.well-known/smart-configuration")
async def smart_configuration(request: Request) -> Response:
    return _json(discovery.smart_configuration(server_of(request), fhir_base(request)))


@router.get("/fhir/.well-known/openid-configuration")
async def openid_configuration(request: Request) -> Response:
    return _json(discovery.openid_configuration(server_of(request), fhir_base(request)))


@router.get("/auth/jwks")
async def jwks(request: Request) -> Response:
    return _json(server_of(request).keys.jwks(), headers={"Cache-Control": "public, max-age=300"})


# --- token, introspection, revocation ---------------------------------------------------------------
async def _endpoint(request: Request, run: Any) -> Response:
    """Read the form, build the request, run authlib; every failure is an OAuth JSON error."""
    try:
        form = await read_form(request)
    except FormError as exc:
        return oauth_error("invalid_request", exc.message, 400)
    if not _basic_decodes(request.headers.get("authorization")):
        return oauth_error("invalid_client", "The Basic credentials are not base64 of UTF-8 id:secret", 401)
    if any(k == "scope" and len(v) > MAX_SCOPE_PARAM for k, v in form):
        return oauth_error("invalid_scope", f"The scope parameter is longer than {MAX_SCOPE_PARAM} characters")
    try:
        req = authorize.smart_request(request, [], form, method="POST")
    except OAuth2Error as error:
        return oauth_error(error.error or "invalid_request", error.description or "", 400)
    try:
        response: Response = await run_in_worker(run, req)
    except OAuth2Error as error:  # raised outside authlib's own handling (e.g. in client authentication)
        return _json(dict(error.get_body()), error.status_code or 400, NO_STORE)
    except Exception:
        log.exception("the token endpoint failed")
        return oauth_error("server_error", "The server failed to process the request; the error has been logged",
                           500)
    return response


def _basic_decodes(authorization: str | None) -> bool:
    """authlib decodes Basic credentials without catching bad UTF-8; refuse those here (no 500s)."""
    scheme, _, value = (authorization or "").strip().partition(" ")
    if scheme.lower() != "basic":
        return True
    try:
        base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except ValueError:
        return False
    return True


@router.post("/auth/token")
async def token(request: Request) -> Response:
    return await _endpoint(request, server_of(request).create_token_response)


@router.post("/auth/introspect")
async def introspect(request: Request) -> Response:
    server = server_of(request)
    return await _endpoint(request, lambda req: server.create_endpoint_response("introspection", req))


@router.post("/auth/revoke")
async def revoke(request: Request) -> Response:
    server = server_of(request)
    return await _endpoint(request, lambda req: server.create_endpoint_response("revocation", req))


# --- the authorization endpoint and its pages ---------------------------------------------------------
@router.get("/auth/authorize")
@router.post("/auth/authorize")
async def authorize_endpoint(request: Request) -> Response:
    return await authorize.authorize(server_of(request), request)


@router.get("/auth/continue")
async def continue_endpoint(request: Request) -> Response:
    return await authorize.continue_(server_of(request), request)


@router.get("/auth/login")
async def login_page(request: Request) -> Response:
    return await authorize.login_form(server_of(request), request)


@router.post("/auth/login")
async def login_submit(request: Request) -> Response:
    return await authorize.login_submit(server_of(request), request)


@router.post("/auth/picker")
async def picker_submit(request: Request) -> Response:
    return await authorize.picker_submit(server_of(request), request)


@router.post("/auth/consent")
async def consent_submit(request: Request) -> Response:
    return await authorize.consent_submit(server_of(request), request)


@router.post("/auth/logout")
async def logout(request: Request) -> Response:
    services = server_of(request).services
    now = datetime.now(UTC)
    session = await sessions.load(services.auth, request, now)
    try:
        form = dict(await read_form(request))
    except FormError:
        form = {}
    if session is not None and session.csrf_ok(form.get("csrf")):
        await sessions.sign_out(services.auth, session)
    response = Response(status_code=303, headers={"Location": "/auth/login?next=launcher"})
    response.delete_cookie(sessions.COOKIE, path="/auth")
    return response


# --- EHR launch -------------------------------------------------------------------------------------------
@router.get("/auth/launcher")
async def launcher(request: Request) -> Response:
    return await launch.launcher_page(server_of(request).services, request, datetime.now(UTC))


@router.post("/auth/launcher")
async def launcher_submit(request: Request) -> Response:
    return await launch.launch_submit(server_of(request).services, request, datetime.now(UTC))
