"""private_key_jwt client authentication, as SMART (client-confidential-asymmetric, Backend Services) says.

Why a rewrite of authlib's `JWTBearerClientAssertion.__call__` rather than a few overrides: authlib's
instance is shared by every request thread, but the checks need the request (the token URL is the
expected `aud`, the header's `kid`/`jku` pick the key), and authlib decodes without an algorithm list,
so joserfc refuses RS384/ES384 (research P10). The rules:
* header `alg` RS384 or ES384 (nothing else, so no `none`, HS256 or RS256), `kid` required, `jku` if
  present must equal the registered `jwks_uri`;
* the key: exactly one key in the registered JWKS (or the one fetched from `jwks_uri`, cached per its
  Cache-Control) with that `kid` and the algorithm's key type;
* claims: `iss` = `sub` = client_id, `aud` = the token URL, `exp` at most 5 minutes ahead (plus the
  leeway Inferno's exact now+300 needs), `jti` never seen before for that issuer.
Every failure is `invalid_client`.
"""

from __future__ import annotations

import re
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from authlib.common.encoding import json_loads
from authlib.oauth2.rfc6749 import InvalidClientError
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import import_key

from fhir_server.auth.authlib_adapter import ClientModel, SmartAuthorizationServer, SmartRequest

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ALGORITHMS = {"RS384": "RSA", "ES384": "EC"}
MAX_ASSERTION = 8192
MAX_LIFETIME = 300
LEEWAY = 60
JWKS_MAX_BYTES = 64 * 1024
JWKS_DEFAULT_TTL = 300
JWKS_MAX_TTL = 3600
LOOPBACK = ("localhost", "127.0.0.1", "::1")


def _refuse(message: str) -> InvalidClientError:
    return InvalidClientError(description=re.sub(r'[^\x20-\x21\x23-\x5b\x5d-\x7e]', "'", message)[:300])


class JwksCache:
    """Client JWKS fetched from `jwks_uri`, kept as long as the response's Cache-Control allows."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, dict[str, Any]]] = {}

    def get(self, uri: str, refresh: bool = False) -> dict[str, Any]:
        parts = urlsplit(uri)
        if parts.scheme != "https" and not (parts.scheme == "http" and parts.hostname in LOOPBACK):
            raise _refuse("The client's jwks_uri must be https")
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(uri)
        if entry and entry[0] > now and not refresh:
            return entry[1]
        try:
            with httpx.Client(timeout=5, follow_redirects=False) as http:
                response = http.get(uri, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise _refuse(f"The client's jwks_uri could not be fetched: {type(exc).__name__}") from exc
        if response.status_code != 200 or len(response.content) > JWKS_MAX_BYTES:
            raise _refuse("The client's jwks_uri did not return a JWKS")
        try:
            jwks = json_loads(response.content)
        except ValueError as exc:
            raise _refuse("The client's jwks_uri did not return JSON") from exc
        if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
            raise _refuse("The client's jwks_uri did not return a JWKS")
        ttl = JWKS_DEFAULT_TTL
        match = re.search(r"max-age=(\d+)", response.headers.get("cache-control", ""))
        if "no-store" in response.headers.get("cache-control", "") or "no-cache" in response.headers.get("cache-control", ""):
            ttl = 0
        elif match:
            ttl = min(int(match.group(1)), JWKS_MAX_TTL)
        with self._lock:
            self._entries[uri] = (now + ttl, jwks)
        return jwks


class SmartPrivateKeyJWT:
    """Registered with authlib as the `private_key_jwt` client authentication method."""

    CLIENT_AUTH_METHOD = "private_key_jwt"

    def __init__(self, server: SmartAuthorizationServer) -> None:
        self.server = server
        self.jwks_cache = JwksCache()

    def __call__(self, query_client: Any, request: SmartRequest) -> ClientModel | None:
        form = request.form
        assertion_type = form.get("client_assertion_type")
        assertion = form.get("client_assertion")
        if assertion_type is None and assertion is None:
            return None  # not this method; authlib tries the next one
        if assertion_type != ASSERTION_TYPE:
            raise _refuse(f"client_assertion_type must be {ASSERTION_TYPE}")
        if not assertion or len(assertion) > MAX_ASSERTION:
            raise _refuse(f"client_assertion must be a JWT of at most {MAX_ASSERTION} characters")
        header, claims = self._unverified(assertion)
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise _refuse("The assertion must be signed with RS384 or ES384")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise _refuse("The assertion header must name its key (kid)")
        client_id = claims.get("sub")
        if not isinstance(client_id, str) or claims.get("iss") != client_id:
            raise _refuse("The assertion's iss and sub must both be the client_id")
        client: ClientModel | None = query_client(client_id)
        if client is None or not client.check_endpoint_auth_method(self.CLIENT_AUTH_METHOD, "token"):
            raise _refuse("The client is unknown or may not authenticate with private_key_jwt")
        key = self._key(client, header, alg, kid)
        try:
            verified = jwt.decode(assertion, key, algorithms=[alg])
        except (JoseError, ValueError) as exc:
            raise _refuse(f"The assertion's signature does not verify: {exc}") from exc
        self._check_claims(verified.claims, request)
        request.client = client
        return client

    @staticmethod
    def _unverified(assertion: str) -> tuple[dict[str, Any], dict[str, Any]]:
        try:
            obj = jws.extract_compact(assertion.encode("ascii"))
            claims = json_loads(obj.payload)
        except (JoseError, ValueError, UnicodeEncodeError) as exc:
            raise _refuse("client_assertion is not a compact JWS") from exc
        if not isinstance(claims, dict):
            raise _refuse("The assertion's payload is not a JSON object")
        return dict(obj.headers()), claims

    def _key(self, client: ClientModel, header: dict[str, Any], alg: str, kid: str) -> Any:
        registered = client.client
        jku = header.get("jku")
        if jku is not None and jku != registered.jwks_uri:
            raise _refuse("The assertion's jku is not the client's registered jwks_uri")
        if registered.jwks:
            candidates = self._candidates(registered.jwks, alg, kid)
        elif registered.jwks_uri:
            candidates = self._candidates(self.jwks_cache.get(registered.jwks_uri), alg, kid)
            if not candidates:  # the client may have rotated its keys since we cached them
                candidates = self._candidates(self.jwks_cache.get(registered.jwks_uri, refresh=True), alg, kid)
        else:
            raise _refuse("The client has no registered public keys")
        if len(candidates) != 1:
            raise _refuse("No single registered key matches the assertion's kid and algorithm")
        try:
            return import_key(candidates[0])
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            raise _refuse("The registered key cannot be used") from exc

    @staticmethod
    def _candidates(jwks: dict[str, Any], alg: str, kid: str) -> list[dict[str, Any]]:
        keys = jwks.get("keys") if isinstance(jwks, dict) else None
        out = []
        for key in keys if isinstance(keys, list) else ():
            if not isinstance(key, dict) or key.get("kid") != kid or key.get("kty") != ALGORITHMS[alg]:
                continue
            if key.get("alg") not in (None, alg) or key.get("use") not in (None, "sig"):
                continue
            out.append({k: v for k, v in key.items() if k not in ("d", "p", "q", "dp", "dq", "qi", "key_ops")})
        return out

    def _check_claims(self, claims: dict[str, Any], request: SmartRequest) -> None:
        now = int(request.now.timestamp())
        registry = jwt.JWTClaimsRegistry(now=now, leeway=LEEWAY, iss={"essential": True},
                                         sub={"essential": True}, exp={"essential": True},
                                         jti={"essential": True},
                                         aud={"essential": True, "values": [request.token_url]})
        try:
            registry.validate(claims)
        except JoseError as exc:
            raise _refuse(f"The assertion's claims are not valid: {exc.error}: {exc.description}") from exc
        exp = claims["exp"]
        if not isinstance(exp, int) or exp > now + MAX_LIFETIME + LEEWAY:
            raise _refuse("The assertion's exp must be at most 5 minutes ahead")
        jti = claims["jti"]
        if not isinstance(jti, str) or not 0 < len(jti) <= 256:
            raise _refuse("The assertion's jti must be a string")
        store = self.server.services.auth
        keep_until = datetime.fromtimestamp(exp, UTC) + timedelta(seconds=LEEWAY)
        if not self.server.call(store.first_use, claims["iss"], jti, keep_until):
            raise _refuse("The assertion's jti was used before")
