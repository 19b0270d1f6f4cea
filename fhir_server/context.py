"""The per-request context every interaction receives: who asks, where, and how they want the answer.

Built once per request by `rest/`, immutable, passed explicitly (never read from a global). SMART login
will fill `caller` with the token's identity and scopes; until then it is anonymous.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class Caller:
    """The authenticated party. `scopes` empty and `anonymous` true while auth is off."""

    anonymous: bool = True
    subject: str | None = None
    client_id: str | None = None
    scopes: frozenset[str] = frozenset()
    patient: str | None = None


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
