"""SMART scopes: the v1 and v2 grammar, and narrowing a request to what a ceiling allows.

Why one module for both grant time and request time: the authorization server narrows what an app asks
for by the client's registration and the user's role, and the resource server recomputes the same
intersection on every request (a role or a client registration may have changed since the token was
issued). Using one function for both means a token can never be worth more at the API than at grant time.

Grammar (scopes-and-launch-context.html): `(patient|user|system)/(Type|*).(perms)[?param=value(&…)]`
where perms is v1 `read|write|*` or a v2 in-order subset of `cruds`. Query constraints are split on `&`
and the first `=` without percent-decoding: values carry `|`, `:` and `/` verbatim.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

LEVELS = ("patient", "user", "system")
LETTERS = "cruds"
_V1 = {"read": "rs", "write": "cud", "*": "cruds"}
_RESOURCE = re.compile(r"(patient|user|system)/(\*|[A-Z][A-Za-z]{0,63})\.(read|write|\*|[cruds]{1,5})(?:\?(.+))?")
CONTEXT_SCOPES = frozenset({"launch", "launch/patient", "launch/encounter", "openid", "fhirUser", "profile",
                            "offline_access", "online_access"})
MAX_SCOPES = 200  # a request naming more is refused: the scope string is client-controlled
MAX_SCOPE_LENGTH = 512


@dataclass(frozen=True)
class ResourceScope:
    """One resource scope, normalised to v2 letters; `v1` remembers the form asked for, so it is echoed."""

    level: str
    resource_type: str  # a type name or "*"
    letters: str  # an in-order subset of "cruds"
    constraints: tuple[tuple[str, str], ...] = ()
    v1: bool = False

    def allows(self, resource_type: str, letter: str) -> bool:
        return self.resource_type in ("*", resource_type) and letter in self.letters

    def text(self) -> str:
        perms = self.letters
        if self.v1 and not self.constraints:
            perms = {v: k for k, v in _V1.items()}.get(self.letters, self.letters)
        query = "&".join(f"{k}={v}" for k, v in self.constraints)
        return f"{self.level}/{self.resource_type}.{perms}" + (f"?{query}" if query else "")


@lru_cache(maxsize=8192)
def parse_resource_scope(scope: str) -> ResourceScope | None:
    """The scope as a ResourceScope, or None when it is not a (well-formed) resource scope.

    Out-of-order v2 letters (`.dus`) are refused rather than guessed at; a v1 permission cannot carry a
    query constraint."""
    if len(scope) > MAX_SCOPE_LENGTH:
        return None
    match = _RESOURCE.fullmatch(scope)
    if match is None:
        return None
    level, resource_type, perms, query = match.groups()
    v1 = perms in _V1
    letters = _V1[perms] if v1 else perms
    if not v1 and letters != "".join(c for c in LETTERS if c in letters):
        return None
    if v1 and query:
        return None
    constraints: list[tuple[str, str]] = []
    for part in (query or "").split("&") if query else ():
        name, sep, value = part.partition("=")
        if not sep or not name or not value:
            return None
        constraints.append((name, value))
    return ResourceScope(level, resource_type, letters, tuple(constraints), v1)


def split(scope: str | None) -> list[str]:
    """The space-separated scope string as a list, de-duplicated in order."""
    seen: dict[str, None] = {}
    for item in (scope or "").split():
        seen.setdefault(item, None)
    return list(seen)


def resource_scopes(scopes: Iterable[str]) -> list[ResourceScope]:
    return [parsed for s in scopes if (parsed := parse_resource_scope(s)) is not None]


def _covers_level(requested: str, ceiling: str) -> bool:
    """A `user/` ceiling also bounds `patient/` scopes (a patient's records are a subset of what the user
    may see); `system/` bounds only `system/`."""
    return requested == ceiling or (requested == "patient" and ceiling == "user")


def _meet(wanted: ResourceScope, ceiling: ResourceScope) -> ResourceScope | None:
    if not _covers_level(wanted.level, ceiling.level):
        return None
    if ceiling.resource_type == "*":
        resource_type = wanted.resource_type
    elif wanted.resource_type in ("*", ceiling.resource_type):
        resource_type = ceiling.resource_type
    else:
        return None
    letters = "".join(c for c in LETTERS if c in wanted.letters and c in ceiling.letters)
    if not letters:
        return None
    if wanted.constraints and ceiling.constraints and wanted.constraints != ceiling.constraints:
        return None
    constraints = wanted.constraints or ceiling.constraints
    v1 = wanted.v1 and letters == wanted.letters and not constraints
    return ResourceScope(wanted.level, resource_type, letters, constraints, v1)


def narrow_resource_scopes(wanted: Iterable[ResourceScope], ceiling: Iterable[ResourceScope]) -> list[ResourceScope]:
    """Each wanted scope cut down to what some ceiling scope allows (possibly into several narrower
    scopes, e.g. `user/*.cruds` under a doctor's ceiling becomes `user/*.rs` plus the types they write)."""
    ceiling = list(ceiling)
    out: dict[ResourceScope, None] = {}
    for w in wanted:
        for c in ceiling:
            met = _meet(w, c)
            if met is not None:
                out.setdefault(met, None)
    return list(out)


def narrow(requested: Iterable[str], *ceilings: Iterable[str]) -> list[str]:
    """The requested scope strings each ceiling permits: resource scopes cut down by `_meet`, other scopes
    (launch, openid, offline_access …) kept only when every ceiling names them. Unknown or malformed
    scopes are dropped (RFC 6749 lets the server grant less than asked).

    Memoised: the resource server narrows every request's token by the same few (scope, role, client)
    combinations."""
    return list(_narrow(tuple(requested), tuple(tuple(c) for c in ceilings)))


@lru_cache(maxsize=4096)
def _narrow(requested_in: tuple[str, ...], ceilings: tuple[tuple[str, ...], ...]) -> tuple[str, ...]:
    requested = [s for s in split(" ".join(requested_in))][:MAX_SCOPES]
    current = resource_scopes(requested)
    others = [s for s in requested if parse_resource_scope(s) is None and s in CONTEXT_SCOPES]
    for ceiling in ceilings:
        current = narrow_resource_scopes(current, resource_scopes(ceiling))
        others = [s for s in others if s in ceiling]
    return tuple(others + [s.text() for s in current])


def is_v2_constraint_allowed(name: str) -> bool:
    """Constraint parameters are plain search parameters: no chains, `_has`, result or paging parameters."""
    return bool(re.fullmatch(r"[A-Za-z][A-Za-z0-9\-]*(:[a-z\-]+)?", name)) and not name.startswith("_")
