"""The OAuth grants SMART needs, as authlib subclasses with SMART's rules where authlib's defaults differ.

* Authorization code: PKCE S256 mandatory for every client (`SmartPKCE`; authlib allows `plain` and
  skips PKCE when no challenge is sent, research P11), `aud` must be this FHIR base (`AudienceCheck`),
  codes single-use (taken atomically when presented) and bound to client, redirect URI, PKCE challenge and
  the launch context the user approved; an RS256 id_token for `openid` (`SmartOpenIDCode`).
* Refresh: rotation (each use returns a new refresh token and retires the old one; presenting a retired
  one ends the whole chain), the launch context copied unchanged, scope narrowed never widened.
* Client credentials (SMART Backend Services): private_key_jwt only (auth/assertions.py), `system/`
  scopes only, short-lived tokens, never a refresh token.
The token response carries the launch context (`patient`, `encounter`, `fhirContext`,
`need_patient_banner`) taken from the stored `Grant`, so what the app is told and what the resource
server enforces come from the same record.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from authlib.oauth2.rfc6749 import InvalidGrantError, InvalidRequestError, InvalidScopeError, TokenMixin
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant, ClientCredentialsGrant, RefreshTokenGrant
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import AuthorizationCodeMixin, OpenIDCode

from fhir_server.auth import negotiation, scopes
from fhir_server.auth.authlib_adapter import AuthUser, ClientModel, SmartAuthorizationServer, SmartRequest
from fhir_server.auth.urls import same_base
from fhir_server.db.auth_store import CODES, TOKENS, Grant, TokenRecord, User, digest

CODE_SECONDS = 300  # RFC 6749 recommends at most 10 minutes; the app exchanges it at once
ONLINE_SECONDS = 8 * 3600  # an online_access chain ends with the working day's sign-in, not later
ID_TOKEN_SECONDS = 3600
MAX_SECRET_LENGTH = 512
USER_FLOW_AUTH_METHODS = ["none", "client_secret_basic", "client_secret_post", "private_key_jwt"]


def context_fields(grant: Grant) -> dict[str, Any]:
    """The SMART launch-context parameters of a token response (and of introspection)."""
    out: dict[str, Any] = {}
    if grant.patient:
        out["patient"] = grant.patient
    if grant.encounter:
        out["encounter"] = grant.encounter
    if grant.fhir_context:
        out["fhirContext"] = [dict(item) for item in grant.fhir_context]
    if grant.patient:
        out["need_patient_banner"] = grant.need_patient_banner
    return out


def fhir_user_url(base: str, user: User) -> str | None:
    return f"{base.rstrip('/')}/{user.fhir_user}" if user.fhir_user else None


def _server(grant: Any) -> SmartAuthorizationServer:
    server: SmartAuthorizationServer = grant.server
    return server


# --- PKCE and aud -------------------------------------------------------------------------------------
class SmartPKCE(CodeChallenge):
    """S256 only, and required from every client at both ends (SMART: "SHALL NOT support plain";
    "SHALL ensure that the code_verifier is present and valid")."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("PKCE is required: send code_challenge with code_challenge_method=S256")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("code_challenge_method must be S256 (plain is not supported)")
        super().validate_code_challenge(grant, redirect_uri)

    def validate_code_verifier(self, grant: Any, result: Any) -> None:
        if not grant.request.form.get("code_verifier"):
            raise InvalidRequestError("Missing 'code_verifier' (PKCE is required)")
        super().validate_code_verifier(grant, result)


class AudienceCheck:
    """`aud` is required and must be this server's FHIR base URL (trailing slash normalised only)."""

    def __call__(self, grant: Any) -> None:
        grant.register_hook("after_validate_authorization_request_payload", self.check)

    @staticmethod
    def check(grant: Any, redirect_uri: str) -> None:
        request: SmartRequest = grant.request
        aud = request.payload.data.get("aud")
        if not aud:
            raise InvalidRequestError("Missing 'aud': send this server's FHIR base URL")
        if not same_base(aud, request.fhir_base):
            raise InvalidRequestError("'aud' is not this server's FHIR base URL")


# --- authorization code -------------------------------------------------------------------------------
@dataclass(frozen=True)
class CodeRecord(AuthorizationCodeMixin):
    """A redeemed authorization code (already deleted from the store when this exists)."""

    client_id: str
    redirect_uri: str
    scope: str
    user: str
    code_challenge: str
    code_challenge_method: str
    nonce: str | None
    auth_time: int | None
    grant: Grant

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int | None:
        return self.auth_time

    def get_acr(self) -> str | None:
        return None

    def get_amr(self) -> list[str] | None:
        return None


class SmartCodeGrant(AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = USER_FLOW_AUTH_METHODS

    def save_authorization_code(self, code: str, request: SmartRequest) -> None:
        approved = request.smart_approved
        if approved is None:  # pragma: no cover - the consent route always sets it
            raise InvalidRequestError("The authorization was not approved")
        user: AuthUser = request.user
        scope = approved["scope"]
        grant = Grant(client_id=request.client.client_id, scope=scope, aud=request.fhir_base,
                      user=user.user.username, fhir_user=user.user.fhir_user, patient=approved.get("patient"),
                      encounter=approved.get("encounter"), fhir_context=tuple(approved.get("fhir_context") or ()),
                      need_patient_banner=bool(approved.get("need_patient_banner")),
                      id_token_issued="openid" in scopes.split(scope))
        data = request.payload.data
        record = {"client_id": request.client.client_id, "redirect_uri": data.get("redirect_uri") or "",
                  "scope": scope, "user": user.user.username, "code_challenge": data.get("code_challenge"),
                  "code_challenge_method": data.get("code_challenge_method") or "S256",
                  "nonce": data.get("nonce"), "auth_time": approved.get("auth_time"), "grant": grant.to_doc()}
        server = _server(self)
        server.call(server.services.auth.put_once, CODES, code, record,
                    request.now + timedelta(seconds=CODE_SECONDS))

    def query_authorization_code(self, code: str, client: ClientModel) -> CodeRecord | None:
        """Taken (deleted) atomically: a code works once, even when two redemptions race, and a code
        presented with a wrong verifier or redirect URI is spent as well."""
        if not isinstance(code, str) or not 0 < len(code) <= MAX_SECRET_LENGTH:
            return None
        server = _server(self)
        request: SmartRequest = self.request
        data = server.call(server.services.auth.take_once, CODES, code, request.now)
        if data is None or data["client_id"] != client.client_id:
            return None
        return CodeRecord(data["client_id"], data["redirect_uri"], data["scope"], data["user"],
                          data["code_challenge"], data["code_challenge_method"], data.get("nonce"),
                          data.get("auth_time"), Grant.from_doc(data["grant"]))

    def delete_authorization_code(self, authorization_code: CodeRecord) -> None:
        """Nothing left to do: query_authorization_code already took the code."""

    def authenticate_user(self, authorization_code: CodeRecord) -> AuthUser | None:
        server = _server(self)
        user = server.call(server.services.auth.get_user, authorization_code.user)
        if user is None or not user.active:
            return None
        return AuthUser(user, fhir_user_url(self.request.fhir_base, user))

    def generate_token(self, user: Any = None, scope: str | None = None, grant_type: str | None = None,
                       expires_in: int | None = None, include_refresh_token: bool = True) -> dict[str, Any]:
        request: SmartRequest = self.request
        code: CodeRecord = request.authorization_code
        granted = scopes.split(code.scope)
        request.smart_grant = code.grant
        refresh = negotiation.wants_refresh(granted) and request.client.kind != "backend"
        if refresh and "offline_access" not in granted:
            request.smart_refresh_expires = request.now + timedelta(seconds=ONLINE_SECONDS)
        token = super().generate_token(user=user, scope=code.scope, grant_type=grant_type,
                                       include_refresh_token=refresh)
        token.update(context_fields(code.grant))
        return token


class SmartOpenIDCode(OpenIDCode):
    """id_token: RS256 with `kid`, iss = the FHIR base, aud = [client_id], sub = username, nonce, and
    `fhirUser` (absolute URL) when the `fhirUser` scope was granted."""

    def __init__(self, server: SmartAuthorizationServer) -> None:
        super().__init__(require_nonce=False)
        self.server = server

    def resolve_client_private_key(self, client: Any) -> Any:
        return self.server.keys.current

    def get_client_algorithm(self, client: Any) -> str:
        return "RS256"

    def get_encode_header(self, client: Any) -> dict[str, str]:
        return {"alg": "RS256", "kid": self.server.keys.kid}

    def get_compatible_claims(self, request: SmartRequest) -> dict[str, Any]:
        now = int(request.now.timestamp())
        return {"iss": request.fhir_base, "aud": [request.client.get_client_id()], "iat": now,
                "exp": now + ID_TOKEN_SECONDS}

    def exists_nonce(self, nonce: str, request: Any) -> bool:
        return False  # a nonce is the app's replay check on the id_token; codes are single-use here

    def generate_user_info(self, user: AuthUser, scope: str) -> dict[str, Any]:
        info: dict[str, Any] = {"sub": user.user.username}
        if "fhirUser" in scopes.split(scope) and user.fhir_user_url:
            info["fhirUser"] = user.fhir_user_url
        return info


# --- refresh ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StoredToken(TokenMixin):
    """A token record with its secret, as authlib's refresh, introspection and revocation see it."""

    secret: str
    record: TokenRecord
    now: Any

    @property
    def grant(self) -> Grant:
        return self.record.grant

    def check_client(self, client: ClientModel) -> bool:
        return self.record.grant.client_id == client.client_id

    def get_scope(self) -> str:
        return self.record.grant.scope

    def get_expires_in(self) -> int:
        return int((self.record.expires_at - self.record.issued_at).total_seconds())

    def is_expired(self) -> bool:
        return not self.now < self.record.expires_at

    def is_revoked(self) -> bool:
        return self.record.revoked


class SmartRefreshGrant(RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = USER_FLOW_AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token: str) -> StoredToken | None:
        if not isinstance(refresh_token, str) or not 0 < len(refresh_token) <= MAX_SECRET_LENGTH:
            return None
        server = _server(self)
        request: SmartRequest = self.request
        record = server.call(server.services.auth.load_token, refresh_token)
        if record is None or record.kind != "refresh":
            return None
        if record.revoked:  # a retired token presented again: someone holds a copy, so end the chain
            server.call(server.services.auth.revoke_token, refresh_token)
            return None
        if not record.active(request.now):
            return None
        return StoredToken(refresh_token, record, request.now)

    def _validate_token_scope(self, token: StoredToken) -> None:
        requested = self.request.payload.scope
        if requested and not negotiation.covers(token.get_scope(), requested):
            raise InvalidScopeError("A refresh may narrow the granted scope but never widen it")

    def authenticate_user(self, refresh_token: StoredToken) -> AuthUser | None:
        username = refresh_token.grant.user
        if username is None:
            return None
        server = _server(self)
        user = server.call(server.services.auth.get_user, username)
        if user is None or not user.active:
            return None
        return AuthUser(user, fhir_user_url(self.request.fhir_base, user))

    def issue_token(self, user: AuthUser, refresh_token: StoredToken) -> dict[str, Any]:
        request: SmartRequest = self.request
        old = refresh_token.grant
        requested = request.payload.scope
        granted = scopes.narrow(scopes.split(requested), scopes.split(old.scope)) if requested else scopes.split(old.scope)
        # the registration and the role may have shrunk since: never hand out more than they allow now
        services = _server(self).services
        granted = negotiation.for_user(
            negotiation.for_client(" ".join(granted), request.client.client, services.registry,
                                   services.search_registry), user.user)
        if not granted:
            raise InvalidScopeError("No scope the client and user may still hold was requested")
        scope = " ".join(granted)
        grant = replace(old, scope=scope)
        request.smart_grant = grant
        request.smart_family = refresh_token.record.family
        refresh = negotiation.wants_refresh(granted)
        if refresh and "offline_access" not in granted:
            request.smart_refresh_expires = refresh_token.record.expires_at  # online: the chain ends as before
        token = self.generate_token(user=user, scope=scope, include_refresh_token=refresh)
        token.update(context_fields(grant))
        return token

    def revoke_old_credential(self, refresh_token: StoredToken) -> None:
        """Retire the presented token. If a concurrent refresh already retired it, the same token was
        used twice: end the chain (including what was just issued) and refuse."""
        server = _server(self)
        store = server.services.auth

        async def retire() -> bool:
            doc = await store.database[TOKENS].find_one_and_update(
                {"_id": digest(refresh_token.secret), "revoked": False}, {"$set": {"revoked": True}})
            if doc is None:
                await store.revoke_token(refresh_token.secret)
                return False
            return True

        if not server.call(retire):
            raise InvalidGrantError("The refresh token was already used")


# --- client credentials -------------------------------------------------------------------------------
class SmartClientCredentialsGrant(ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["private_key_jwt"]

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        request: SmartRequest = self.request
        client: ClientModel = request.client
        services = _server(self).services
        granted = negotiation.for_backend(request.payload.scope, client.client, services.registry,
                                          services.search_registry)
        if not granted:
            raise InvalidScopeError("Request system/ scopes this client is registered for")
        scope = " ".join(granted)
        request.smart_grant = Grant(client_id=client.client_id, scope=scope, aud=request.fhir_base)
        token = self.generate_token(scope=scope, include_refresh_token=False)
        self.save_token(token)
        return 200, token, self.TOKEN_RESPONSE_HEADER
