"""The per-request context every interaction receives: who asks, where, and how they want the answer.

Built once per request by `rest/`, immutable, passed explicitly (never read from a global). `caller` carries
the identity and scopes of the access token (or says that authentication is off).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from fhir_server.auth.scopes import ResourceScope


@dataclass(frozen=True)
class Caller:
    """Who is asking, as the access token says (auth/bearer.py builds it; auth/access.py decides with it).

    `unrestricted` is true only when authentication is off (`FHIR_AUTH=off`). Otherwise `scopes` are the
    token's resource scopes already intersected with the user's role or the client's registration, and
    `patient` is the launch-context patient that `patient/` scopes are confined to. `own_patient` is the
    Patient a portal user is linked to: their `user/` scopes are confined to it as well.
    """

    unrestricted: bool = True
    client_id: str | None = None
    user: str | None = None
    role: str | None = None
    fhir_user: str | None = None
    patient: str | None = None
    own_patient: str | None = None
    scopes: tuple[ResourceScope, ...] = ()


@dataclass(frozen=True)
class Prefer:
    """The parsed `Prefer` header (RFC 7240 as FHIR uses it)."""

    return_: str | None = None  # minimal | representation | OperationOutcome
    handling: str | None = None  # strict | lenient
    respond_async: bool = False


@dataclass(frozen=True)
class RequestContext:
    request_id: str
    base_url: str
    now: datetime
    prefer: Prefer = Prefer()
    pretty: bool = False
    caller: Caller = field(default_factory=Caller)

    def url(self, *parts: str) -> str:
        return "/".join([self.base_url, *parts])
