"""Bearer token -> Caller: the resource server's half of SMART, run once per FHIR request.

Why the scopes are narrowed again here, not only at grant time: the user's role and the client's
registration are re-read (at most `FHIR_AUTH_CACHE_SECONDS` old), so demoting a user, deactivating a
client or tightening a registration takes effect for tokens already issued (auth/scopes.narrow is the one
intersection rule). Expiry is checked on every request; a revocation made by this process applies at once,
one made by another server process within `FHIR_AUTH_CACHE_SECONDS`.
"""

from __future__ import annotations

from datetime import datetime

from fhir_server import errors
from fhir_server.auth import roles, scopes, urls
from fhir_server.context import Caller
from fhir_server.db.auth_store import AuthStore, TokenRecord

MAX_TOKEN_LENGTH = 512


def _unauthorized(message: str, error: str | None = "invalid_token") -> errors.FhirError:
    challenge = 'Bearer realm="fhir"' + (f', error="{error}", error_description="{message}"' if error else "")
    return errors.FhirError(401, [errors.Issue("login", message)], {"WWW-Authenticate": challenge})


def bearer_secret(authorization: str | None) -> str:
    """The token from an `Authorization: Bearer …` header; 401 with a challenge when there is none."""
    if not authorization:
        raise _unauthorized("This server needs a SMART access token (Authorization: Bearer …)", None)
    scheme, _, secret = authorization.strip().partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret or len(secret) > MAX_TOKEN_LENGTH or " " in secret:
        raise _unauthorized("The Authorization header is not a Bearer token")
    return secret


async def active_token(store: AuthStore, secret: str, now: datetime, audience: str) -> TokenRecord:
    record = await store.recent_token(secret)
    if record is None or record.kind != "access":
        raise _unauthorized("The access token is not known")
    if record.revoked:
        raise _unauthorized("The access token was revoked")
    if not record.active(now):
        raise _unauthorized("The access token has expired")
    if not urls.same_base(record.grant.aud, audience):
        raise _unauthorized("The access token was issued for another server (aud)")
    return record


async def caller_for(store: AuthStore, record: TokenRecord) -> Caller:
    """The Caller a valid token stands for, with its scopes cut to the client's and user's current limits."""
    grant = record.grant
    client = await store.recent_client(grant.client_id)
    if client is None or not client.active:
        raise _unauthorized("The client this token was issued to is no longer registered")
    granted = scopes.split(grant.scope)
    ceilings = [scopes.split(client.scope)]
    role = None
    own_patient = None
    if grant.user is not None:
        user = await store.recent_user(grant.user)
        if user is None or not user.active:
            raise _unauthorized("The user this token was issued to is no longer active")
        role = user.role
        own_patient = user.patient if role == "patient" else None
        ceilings.append([*roles.ceiling(role), *scopes.CONTEXT_SCOPES])
    effective = scopes.resource_scopes(scopes.narrow(granted, *ceilings))
    if grant.user is None:  # client credentials: only system/ scopes mean anything without a user
        effective = [s for s in effective if s.level == "system"]
    else:
        effective = [s for s in effective if s.level != "system"]
    return Caller(unrestricted=False, client_id=grant.client_id, user=grant.user, role=role,
                  fhir_user=grant.fhir_user, patient=grant.patient, own_patient=own_patient,
                  scopes=tuple(effective))


async def authenticate(store: AuthStore, authorization: str | None, now: datetime, audience: str) -> Caller:
    record = await active_token(store, bearer_secret(authorization), now, audience)
    return await caller_for(store, record)
