"""Introspection (RFC 7662 as SMART profiles it) and revocation (RFC 7009), and the assembled server.

Introspection accepts either client authentication or, as SMART requires, a Bearer access token in the
Authorization header. Who may introspect what (the spec leaves it to the server): a backend client (how
a separate resource server is registered) may introspect any token; any other caller only tokens issued
to its own client. Anything else, and every unknown, expired or revoked token, answers exactly
`{"active": false}`.
"""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc6749 import InvalidClientError
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7662 import IntrospectionEndpoint

from fhir_server.auth.assertions import SmartPrivateKeyJWT
from fhir_server.auth.authlib_adapter import ClientModel, SmartAuthorizationServer, SmartRequest
from fhir_server.auth.grants import (
    MAX_SECRET_LENGTH,
    AudienceCheck,
    SmartClientCredentialsGrant,
    SmartCodeGrant,
    SmartOpenIDCode,
    SmartPKCE,
    SmartRefreshGrant,
    StoredToken,
    context_fields,
)
from fhir_server.auth.keys import SigningKeys
from fhir_server.auth.urls import same_base
from fhir_server.services import Services

CLIENT_AUTH = ["client_secret_basic", "client_secret_post", "private_key_jwt"]


def _query(server: SmartAuthorizationServer, request: SmartRequest, secret: str) -> StoredToken | None:
    if not isinstance(secret, str) or not 0 < len(secret) <= MAX_SECRET_LENGTH:
        return None
    record = server.call(server.services.auth.load_token, secret)
    return StoredToken(secret, record, request.now) if record is not None else None


class SmartIntrospection(IntrospectionEndpoint):
    CLIENT_AUTH_METHODS = CLIENT_AUTH

    def authenticate_endpoint_client(self, request: SmartRequest) -> ClientModel:
        authorization = request.headers.get("Authorization") or ""
        scheme, _, secret = authorization.strip().partition(" ")
        if scheme.lower() != "bearer":
            return super().authenticate_endpoint_client(request)
        token = _query(self.server, request, secret.strip())
        if (token is None or token.record.kind != "access" or not token.record.active(request.now)
                or not same_base(token.grant.aud, request.fhir_base)):
            raise InvalidClientError(status_code=401, description="The Bearer token is not an active access token")
        client = self.server.query_client(token.grant.client_id)
        if client is None:
            raise InvalidClientError(status_code=401, description="The Bearer token's client is not active")
        request.client = client
        return client

    def authenticate_token(self, request: SmartRequest, client: ClientModel) -> StoredToken | None:
        self.check_params(request, client)
        token = _query(self.server, request, request.form["token"])
        if token is not None and self.check_permission(token, client, request):
            return token
        return None

    def query_token(self, token_string: str, token_type_hint: str | None) -> None:  # pragma: no cover
        raise NotImplementedError("authenticate_token looks tokens up with the request's clock")

    def check_permission(self, token: StoredToken, client: ClientModel, request: SmartRequest) -> bool:
        return client.kind == "backend" or token.check_client(client)

    def introspect_token(self, token: StoredToken) -> dict[str, Any]:
        grant = token.grant
        body: dict[str, Any] = {
            "active": True, "scope": grant.scope, "client_id": grant.client_id,
            "exp": int(token.record.expires_at.timestamp()), "iat": int(token.record.issued_at.timestamp()),
            "iss": grant.aud, "aud": grant.aud,
            "token_type": "Bearer" if token.record.kind == "access" else "refresh_token",
        }
        if grant.user:
            body["sub"] = grant.user
            body["username"] = grant.user
        if grant.fhir_user:
            body["fhirUser"] = f"{grant.aud.rstrip('/')}/{grant.fhir_user}"
        body.update(context_fields(grant))
        return body


class SmartRevocation(RevocationEndpoint):
    CLIENT_AUTH_METHODS = ["none", *CLIENT_AUTH]

    def authenticate_token(self, request: SmartRequest, client: ClientModel) -> StoredToken | None:
        self.check_params(request, client)
        token = _query(self.server, request, request.form["token"])
        if token is not None and not token.check_client(client):
            return None  # RFC 7009: answer 200 and do nothing for a token this client does not hold
        return token

    def query_token(self, token_string: str, token_type_hint: str | None) -> None:  # pragma: no cover
        raise NotImplementedError("authenticate_token looks tokens up with the request's clock")

    def revoke_token(self, token: StoredToken, request: SmartRequest) -> None:
        self.server.call(self.server.services.auth.revoke_token, token.secret)


def build_server(services: Services, keys: SigningKeys) -> SmartAuthorizationServer:
    """The authorization server with every grant, client authentication method and endpoint SMART needs."""
    server = SmartAuthorizationServer(services, keys)
    server.register_client_auth_method("private_key_jwt", SmartPrivateKeyJWT(server))
    server.register_grant(SmartCodeGrant, [SmartPKCE(required=True), AudienceCheck(), SmartOpenIDCode(server)])
    server.register_grant(SmartRefreshGrant)
    server.register_grant(SmartClientCredentialsGrant)
    server.register_endpoint(SmartIntrospection(server))
    server.register_endpoint(SmartRevocation(server))
    return server
