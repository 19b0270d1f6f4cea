"""`/admin/clients` and `/admin/users`: the accounts CLI over HTTP, for administrators (docs/accounts.md).

Who may call it: a valid SMART access token for this server (the same `bearer.authenticate` as the FHIR
API, audience = the FHIR base URL) whose user has role `administrator` and whose token grants full access
(`user/*.cruds`, after narrowing by role and client). Requiring the full scope as well as the role means an
administrator who signed in to a narrow app (say, a read-only viewer) has not handed that app the keys to
every account. Any other valid token gets 403; none or an invalid one 401 with a `WWW-Authenticate`
challenge. With `FHIR_AUTH=off` the API is open, like the rest of the server (local development only).

Bodies are small JSON objects (at most `MAX_BODY_BYTES`); members and rules are auth/accounts.py's, the
same the CLI applies. Errors are OperationOutcomes (FhirError, rendered by app.py). Answers carry
`Cache-Control: no-store`: a confidential client's secret appears once, in the answer that creates it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response

from fhir_server import errors, fhirjson
from fhir_server.auth import access, accounts, bearer
from fhir_server.rest.router import base_url, body_bytes, services_of
from fhir_server.services import Services

router = APIRouter(prefix="/admin")
MAX_BODY_BYTES = 64 * 1024  # a client with a 10-key JWKS is well under this
MAX_JSON_DEPTH = 8
_JSON_TYPES = ("application/json", "application/fhir+json")


async def _admin(request: Request) -> Services:
    """The services, once the caller is known to be an administrator (or auth is off)."""
    services = services_of(request)
    if services.settings.auth == "off":
        return services
    caller = await bearer.authenticate(services.auth, request.headers.get("authorization"), datetime.now(UTC),
                                       base_url(request))
    if not access.is_administrator_user(caller):
        raise errors.FhirError(403, [errors.Issue("forbidden", "The admin API needs an administrator's token "
                                                               "granting user/*.cruds")],
                               {"WWW-Authenticate": 'Bearer realm="fhir", error="insufficient_scope", '
                                                   'scope="user/*.cruds"'})
    return services


async def _body(request: Request) -> dict[str, Any]:
    """The JSON object sent, refused early when too large, not JSON, or not an object."""
    content_type = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if content_type not in _JSON_TYPES:
        raise errors.unsupported_media_type("Send the body as application/json")
    value = fhirjson.parse(await body_bytes(request, MAX_BODY_BYTES), MAX_JSON_DEPTH)
    if not isinstance(value, dict):
        raise errors.invalid("The body must be a JSON object")
    return value


def _json(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(value), status_code=status, media_type="application/json",
                    headers={"Cache-Control": "no-store", **(headers or {})})


def _refusal(exc: Exception) -> errors.FhirError:
    if isinstance(exc, accounts.AccountError):
        return errors.invalid(exc.message, exc.field)
    if isinstance(exc, accounts.AccountNotFound):
        return errors.not_found(str(exc))
    return errors.conflict(str(exc))


_REFUSALS = (accounts.AccountError, accounts.AccountNotFound, accounts.AccountConflict)


def _client_answer(client: Any, secret: str | None) -> dict[str, Any]:
    return {**accounts.client_view(client), **({"client_secret": secret} if secret else {})}


# --- clients -------------------------------------------------------------------------------------------------

@router.get("/clients")
async def list_clients(request: Request) -> Response:
    services = await _admin(request)
    clients = [accounts.client_view(c) for c in await services.auth.list_clients()]
    return _json({"total": len(clients), "clients": clients})


@router.post("/clients")
async def create_client(request: Request) -> Response:
    services = await _admin(request)
    body = await _body(request)
    try:
        client, secret = await accounts.create_client(services.auth, body)
    except _REFUSALS as exc:
        raise _refusal(exc) from None
    return _json(_client_answer(client, secret), 201, {"Location": f"/admin/clients/{client.client_id}"})


@router.get("/clients/{client_id}")
async def read_client(request: Request, client_id: str) -> Response:
    services = await _admin(request)
    try:
        return _json(accounts.client_view(await accounts.get_client(services.auth, client_id)))
    except _REFUSALS as exc:
        raise _refusal(exc) from None


@router.put("/clients/{client_id}")
async def update_client(request: Request, client_id: str) -> Response:
    services = await _admin(request)
    body = await _body(request)
    try:
        client, secret = await accounts.update_client(services.auth, client_id, body)
    except _REFUSALS as exc:
        raise _refusal(exc) from None
    return _json(_client_answer(client, secret))


@router.delete("/clients/{client_id}")
async def delete_client(request: Request, client_id: str) -> Response:
    services = await _admin(request)
    try:
        await accounts.remove_client(services.auth, client_id)
    except _REFUSALS as exc:
        raise _refusal(exc) from None
    return Response(status_code=204, headers={"Cache-Control": "no-store"})


# --- users ---------------------------------------------------------------------------------------------------

@router.get("/users")
async def list_users(request: Request) -> Response:
    services = await _admin(request)
    now = datetime.now(UTC)
    users = [accounts.user_view(u, now) for u in await services.auth.list_users()]
    return _json({"total": len(users), "users": users})


@router.post("/users")
async def create_user(request: Request) -> Response:
    services = await _admin(request)
    body = await _body(request)
    try:
        user = await accounts.create_user(services.auth, body)
    except _REFUSALS as exc:
        raise _refusal(exc) from None
    return _json(accounts.user_view(user, datetime.now(UTC)), 201, {"Location": f"/admin/users/{user.username}"})


@router.get("/users/{username}")
async def read_user(request: Request, username: str) -> Response:
    services = await _admin(request)
    try:
        return _json(accounts.user_view(await accounts.get_user(services.auth, username), datetime.now(UTC)))
    except _REFUSALS as exc:
        raise _refusal(exc) from None


@router.put("/users/{username}")
async def update_user(request: Request, username: str) -> Response:
    services = await _admin(request)
    body = await _body(request)
    try:
        user = await accounts.update_user(services.auth, username, body)
    except _REFUSALS as exc:
        raise _refusal(exc) from None
    return _json(accounts.user_view(user, datetime.now(UTC)))


@router.delete("/users/{username}")
async def delete_user(request: Request, username: str) -> Response:
    services = await _admin(request)
    try:
        await accounts.remove_user(services.auth, username)
    except _REFUSALS as exc:
        raise _refusal(exc) from None
    return Response(status_code=204, headers={"Cache-Control": "no-store"})


@router.post("/users/{username}/unlock")
async def unlock_user(request: Request, username: str) -> Response:
    services = await _admin(request)
    try:
        user = await accounts.unlock_user(services.auth, username)
    except _REFUSALS as exc:
        raise _refusal(exc) from None
    return _json(accounts.user_view(user, datetime.now(UTC)))
