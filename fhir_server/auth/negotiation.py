"""Which scopes a client gets: the request cut down by the client's registration, the user's role and
what the resource server can evaluate.

Why here and not in authlib: authlib compares scopes as flat strings (research note P8), which knows
nothing of `patient/*.rs` covering `patient/Observation.r`. Every intersection goes through
auth/scopes.narrow, the rule the resource server applies again on each request.
"""

from __future__ import annotations

from collections.abc import Iterable

from fhir_server.auth import roles, scopes
from fhir_server.auth.scopes import ResourceScope
from fhir_server.db.auth_store import Client, User
from fhir_server.model.registry import ResourceRegistry
from fhir_server.search.registry import SearchRegistry

REFRESH_SCOPES = ("offline_access", "online_access")
MAX_SCOPE_PARAM = 8192  # characters in one `scope` parameter


def evaluable(scope: ResourceScope, types: ResourceRegistry, search: SearchRegistry) -> bool:
    """True when the resource server can enforce the scope: a known type (or `*`) and, for v2 query
    constraints, plain search parameters the registry knows for that type (for `*`, a syntactically
    valid name is enough: the resource server checks it per type)."""
    if scope.resource_type != "*" and scope.resource_type not in types:
        return False
    for name, _ in scope.constraints:
        if not scopes.is_v2_constraint_allowed(name):
            return False
        code = name.partition(":")[0]
        if scope.resource_type != "*" and search.get(scope.resource_type, code) is None:
            return False
    return True


def _keep_evaluable(granted: Iterable[str], types: ResourceRegistry, search: SearchRegistry,
                    levels: tuple[str, ...]) -> list[str]:
    out = []
    for s in granted:
        parsed = scopes.parse_resource_scope(s)
        if parsed is None or parsed.level in levels and evaluable(parsed, types, search):
            out.append(s)
    return out


def _subsumes(a: ResourceScope, b: ResourceScope) -> bool:
    return (a != b and a.level == b.level and a.resource_type in ("*", b.resource_type)
            and set(b.letters) <= set(a.letters) and (not a.constraints or a.constraints == b.constraints))


def simplify(granted: list[str]) -> list[str]:
    """Drop resource scopes another granted scope already covers (narrowing `patient/*.rs` against a
    registration of `patient/*.rs patient/Observation.cruds` yields both `patient/*.rs` and the redundant
    `patient/Observation.rs`): the token lists what the app asked for, not the registration's shape."""
    parsed = {s: scopes.parse_resource_scope(s) for s in granted}
    resources = [p for p in parsed.values() if p is not None]
    return [s for s, p in parsed.items() if p is None or not any(_subsumes(o, p) for o in resources)]


def for_client(requested: str | None, client: Client, types: ResourceRegistry, search: SearchRegistry) -> list[str]:
    """A user-facing flow's request cut to the client's registration (no `system/` scopes: those mean
    access without a user, which only client_credentials may have)."""
    granted = scopes.narrow(scopes.split(requested), scopes.split(client.scope))
    return simplify(_keep_evaluable(granted, types, search, ("patient", "user")))


def for_user(offered: Iterable[str], user: User) -> list[str]:
    """The client-narrowed scopes cut to what the signed-in user's role may ever hold."""
    return simplify(scopes.narrow(list(offered), [*roles.ceiling(user.role), *scopes.CONTEXT_SCOPES]))


def for_backend(requested: str | None, client: Client, types: ResourceRegistry, search: SearchRegistry) -> list[str]:
    """client_credentials: only `system/` resource scopes, cut to the registration."""
    granted = scopes.narrow(scopes.split(requested), scopes.split(client.scope))
    return simplify([s for s in _keep_evaluable(granted, types, search, ("system",)) if scopes.parse_resource_scope(s)])


def covers(granted: str, requested: str) -> bool:
    """True when every requested scope is already wholly inside the granted set (refresh may narrow but
    never widen: `patient/Observation.r` is inside `patient/Observation.rs`, `patient/*.rs` is not)."""
    ceiling = scopes.split(granted)
    for s in scopes.split(requested):
        parsed = scopes.parse_resource_scope(s)
        if parsed is None:
            if s not in ceiling:
                return False
            continue
        met = scopes.narrow_resource_scopes([parsed], scopes.resource_scopes(ceiling))
        if not any(m.resource_type == parsed.resource_type and m.letters == parsed.letters
                   and m.constraints == parsed.constraints and m.level == parsed.level for m in met):
            return False
    return True


def wants_refresh(granted: Iterable[str]) -> bool:
    return any(s in REFRESH_SCOPES for s in granted)
