"""Public URLs of the authorization server, derived from the FHIR base URL the client uses.

Why derived from the FHIR base and not from the request alone: `aud`, the id_token `iss` and the
discovery documents must all name the same base the resource server compares tokens against
(rest/router.base_url: `FHIR_BASE_URL`, or `<request base>/fhir`). The `/auth/*` endpoints sit beside
`/fhir` at the same root, so the root is the FHIR base without its final `/fhir`.
"""

from __future__ import annotations

from starlette.requests import Request


def fhir_base(request: Request) -> str:
    """The FHIR base URL (no trailing slash): `FHIR_BASE_URL`, or `<request base>/fhir`."""
    configured = request.app.state.services.settings.base_url
    if configured:
        return str(configured).rstrip("/")
    return str(request.base_url).rstrip("/") + "/fhir"


def root(base: str) -> str:
    """The server root for a FHIR base: `https://h/fhir` -> `https://h`."""
    base = base.rstrip("/")
    return base.removesuffix("/fhir")


def auth_url(base: str, path: str) -> str:
    """The absolute URL of an auth endpoint, e.g. auth_url(base, "token")."""
    return f"{root(base)}/auth/{path}"


def same_base(a: str, b: str) -> bool:
    """`aud` comparison: exact, trailing slash normalised only (never a prefix match)."""
    return a.rstrip("/") == b.rstrip("/")
