"""`/fhir/.well-known/smart-configuration` and `/fhir/.well-known/openid-configuration`.

Why derived, not written out: the grant types, client authentication methods and PKCE methods are read
from the assembled authlib server, so the documents cannot advertise something the server does not do
(Inferno checks S256 present and `plain` absent, `issuer`/`jwks_uri` present because
`sso-openid-connect` is claimed). The issuer is the FHIR base URL: apps fetch
`{iss}/.well-known/openid-configuration` with the id_token's `iss`.
"""

from __future__ import annotations

from typing import Any

from fhir_server.auth.assertions import ALGORITHMS
from fhir_server.auth.authlib_adapter import SmartAuthorizationServer
from fhir_server.auth.grants import SmartPKCE
from fhir_server.auth.keys import ID_TOKEN_ALG
from fhir_server.auth.urls import auth_url

CAPABILITIES = [
    "launch-ehr", "launch-standalone", "authorize-post",
    "client-public", "client-confidential-symmetric", "client-confidential-asymmetric",
    "sso-openid-connect", "context-banner", "context-ehr-patient", "context-ehr-encounter",
    "context-standalone-patient", "permission-offline", "permission-online", "permission-patient",
    "permission-user", "permission-v1", "permission-v2",
]
SCOPES = ["openid", "fhirUser", "launch", "launch/patient", "launch/encounter", "offline_access",
          "online_access", "patient/*.cruds", "user/*.cruds", "system/*.cruds", "patient/*.read",
          "patient/*.write", "user/*.read", "user/*.write", "system/*.read", "system/*.write"]


def _grant_types(server: SmartAuthorizationServer) -> list[str]:
    return [cls.GRANT_TYPE for cls, _ in server._token_grants]


def _auth_methods(server: SmartAuthorizationServer) -> list[str]:
    seen: dict[str, None] = {}
    for cls, _ in server._token_grants:
        for method in cls.TOKEN_ENDPOINT_AUTH_METHODS:
            seen.setdefault(method, None)
    return list(seen)


def smart_configuration(server: SmartAuthorizationServer, base: str) -> dict[str, Any]:
    return {
        "issuer": base,
        "jwks_uri": auth_url(base, "jwks"),
        "authorization_endpoint": auth_url(base, "authorize"),
        "token_endpoint": auth_url(base, "token"),
        "token_endpoint_auth_methods_supported": _auth_methods(server),
        "token_endpoint_auth_signing_alg_values_supported": list(ALGORITHMS),
        "grant_types_supported": _grant_types(server),
        "introspection_endpoint": auth_url(base, "introspect"),
        "revocation_endpoint": auth_url(base, "revoke"),
        "scopes_supported": SCOPES,
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": list(SmartPKCE.SUPPORTED_CODE_CHALLENGE_METHOD),
        "capabilities": CAPABILITIES,
    }


def openid_configuration(server: SmartAuthorizationServer, base: str) -> dict[str, Any]:
    return {
        "issuer": base,
        "authorization_endpoint": auth_url(base, "authorize"),
        "token_endpoint": auth_url(base, "token"),
        "jwks_uri": auth_url(base, "jwks"),
        "introspection_endpoint": auth_url(base, "introspect"),
        "revocation_endpoint": auth_url(base, "revoke"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": [g for g in _grant_types(server) if g != "client_credentials"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [ID_TOKEN_ALG],
        "token_endpoint_auth_methods_supported": _auth_methods(server),
        "token_endpoint_auth_signing_alg_values_supported": list(ALGORITHMS),
        "scopes_supported": ["openid", "fhirUser"],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "at_hash", "fhirUser"],
        "code_challenge_methods_supported": list(SmartPKCE.SUPPORTED_CODE_CHALLENGE_METHOD),
    }
