"""Registering clients and users: the one place their rules live, called by the CLI (cli/clients.py,
cli/users.py), the admin API (admin/routes.py) and the demo seed (demo/accounts.py).

Why one module: a rule enforced by one door and not the other is no rule. Both doors hand over the same
JSON-like mapping (the CLI builds it from its flags), so types, values and combinations are checked here
once, and every refusal is an `AccountError` naming the field, which the CLI prints and the API returns as
a 400 OperationOutcome.

What is kept and what is not: a confidential client's secret and a user's password are stored only as
argon2 hashes (auth/passwords.py); the secret is returned once, by the call that creates (or rotates) it.
A backend client's JWKS is stored only after checking it holds public signing keys (RS384/ES384, each with a
`kid`): a private key sent by mistake is refused, never stored. Disabling or removing a client or user, and
resetting a password, revoke the tokens already issued (a role change needs no revocation: bearer.py reads
the role on every request).
"""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey

from fhir_server.auth import passwords, roles, scopes
from fhir_server.db.auth_store import AuthStore, Client, User

CLIENT_KINDS = ("public", "confidential", "backend")
KEY_ALGORITHMS = {"RS384": "RSA", "ES384": "EC"}  # what SMART Backend Services allows for private_key_jwt
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_PUBLIC_MEMBERS = ("kty", "kid", "alg", "use", "key_ops", "n", "e", "crv", "x", "y", "x5c", "x5t", "x5t#S256")
_CLIENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._~-]{0,63}")
_USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}")
_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})
STAFF_FHIR_USER_TYPES = ("Practitioner", "PractitionerRole", "Person")
PATIENT_FHIR_USER_TYPES = ("Patient", "RelatedPerson", "Person")
MAX_URIS = 20
MAX_URI_LENGTH = 2048
MAX_NAME_LENGTH = 200
MAX_KEYS = 10
MIN_RSA_BITS = 2048
SECRET_BYTES = 32  # 256 bits of entropy: far beyond guessing, so a fast check would do; argon2 is kept anyway
CLIENT_FIELDS = frozenset({"client_id", "name", "kind", "scope", "redirect_uris", "allowed_origins", "launch_uri",
                           "jwks", "jwks_uri", "active"})
CLIENT_CHANGES = frozenset(CLIENT_FIELDS - {"client_id", "kind"} | {"rotate_secret"})
USER_FIELDS = frozenset({"username", "role", "password", "fhir_user", "patient", "active"})
USER_CHANGES = frozenset(USER_FIELDS - {"username"})
ADMINISTRATOR = "administrator"


class AccountError(ValueError):
    """Bad input: `field` names what is wrong (a JSON member name, which is also the CLI flag's name)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class AccountNotFound(LookupError):
    """No client or user by that id."""


class AccountConflict(Exception):
    """The change clashes with what is stored (HTTP 409)."""


class AccountExists(AccountConflict):
    """A client or user by that id is already registered."""


# --- field readers: JSON-like values in, checked Python values out ------------------------------------------

def _text(fields: Mapping[str, Any], name: str, required: bool = False, limit: int = MAX_URI_LENGTH) -> str | None:
    value = fields.get(name)
    if value is None:
        if required:
            raise AccountError(f"`{name}` is required", name)
        return None
    if not isinstance(value, str):
        raise AccountError(f"`{name}` must be a string", name)
    value = value.strip()
    if required and not value:
        raise AccountError(f"`{name}` must not be empty", name)
    if len(value) > limit:
        raise AccountError(f"`{name}` is longer than {limit} characters", name)
    return value or None


def _texts(fields: Mapping[str, Any], name: str) -> list[str]:
    value = fields.get(name)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise AccountError(f"`{name}` must be a list of strings", name)
    if len(value) > MAX_URIS:
        raise AccountError(f"`{name}` may hold at most {MAX_URIS} entries", name)
    return list(dict.fromkeys(v.strip() for v in value if v.strip()))


def _flag(fields: Mapping[str, Any], name: str, default: bool) -> bool:
    value = fields.get(name, default)
    if not isinstance(value, bool):
        raise AccountError(f"`{name}` must be true or false", name)
    return value


def _unknown(fields: Mapping[str, Any], allowed: frozenset[str]) -> None:
    extra = sorted(set(fields) - allowed)
    if extra:
        raise AccountError(f"unknown field(s) {', '.join(extra)}; allowed: {', '.join(sorted(allowed))}", extra[0])


# --- single-value checks --------------------------------------------------------------------------------------

def check_scope(scope: str, kind: str, user_facing: bool | None = None) -> str:
    """The client's scope ceiling, de-duplicated; every item must be a SMART scope its kind can use.

    `system/` scopes are granted only through client_credentials, which only backend clients may use;
    user-facing apps (public, confidential) are refused them (bearer.py drops `system/` scopes from tokens
    issued for a user, so they would never work). A backend client without redirect URIs never has a user
    or a launch, so it may hold only `system/` scopes. `user_facing` defaults to "not backend"."""
    user_facing = kind != "backend" if user_facing is None else user_facing
    items = scopes.split(scope)
    if not items:
        raise AccountError("`scope` must name at least one scope (e.g. `patient/*.rs launch/patient openid`)", "scope")
    if len(items) > scopes.MAX_SCOPES:
        raise AccountError(f"`scope` names more than {scopes.MAX_SCOPES} scopes", "scope")
    for item in items:
        parsed = scopes.parse_resource_scope(item)
        if parsed is None:
            if item in scopes.CONTEXT_SCOPES:
                if not user_facing:
                    raise AccountError(f"`{item}` is a launch/identity scope; a backend client without redirect "
                                       "URIs has no user or launch, so only system/ scopes apply", "scope")
                continue
            raise AccountError(f"`{item}` is not a SMART scope (expected e.g. patient/Observation.rs, "
                               f"user/*.cruds, system/*.rs, or one of {', '.join(sorted(scopes.CONTEXT_SCOPES))})",
                               "scope")
        bad = [name for name, _ in parsed.constraints if not scopes.is_v2_constraint_allowed(name)]
        if bad:
            raise AccountError(f"`{item}`: `{bad[0]}` cannot constrain a scope (plain search parameters only)",
                               "scope")
        if not user_facing and parsed.level != "system":
            raise AccountError(f"`{item}`: a backend client without redirect URIs may hold only system/ scopes",
                               "scope")
        if kind != "backend" and parsed.level == "system":
            raise AccountError(f"`{item}`: system/ scopes are for backend clients (client_credentials)", "scope")
    return " ".join(items)


def _loopback(host: str | None) -> bool:
    return (host or "").lower() in _LOOPBACK


def check_url(value: str, field: str, allow_path: bool = True) -> str:
    """An absolute https URL, or http on a loopback host (local development)."""
    if len(value) > MAX_URI_LENGTH or any(c.isspace() for c in value):
        raise AccountError(f"`{value[:80]}` is not a usable URL (too long or contains spaces)", field)
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        raise AccountError(f"`{value}` is not a valid URL", field) from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise AccountError(f"`{value}` must be an absolute https URL", field)
    if parts.scheme == "http" and not _loopback(parts.hostname):
        raise AccountError(f"`{value}`: plain http is allowed only for localhost; use https", field)
    if parts.fragment or value.endswith("#"):
        raise AccountError(f"`{value}` must not have a fragment", field)
    if "*" in value:
        raise AccountError(f"`{value}`: wildcards are not allowed; register each exact URL", field)
    if not allow_path and (parts.path not in ("", "/") or parts.query or parts.username or parts.password):
        raise AccountError(f"`{value}` must be an origin (scheme://host[:port]) without a path", field)
    return value


def check_redirect_uri(value: str, kind: str) -> str:
    """Exact redirect URIs (compared character for character at /auth/authorize): https, http on loopback,
    or for public native apps a private-use scheme in reverse-domain form (RFC 8252 7.1: `com.example.app:/cb`)."""
    scheme = value.split(":", 1)[0].lower() if ":" in value else ""
    if kind == "public" and "." in scheme and re.fullmatch(r"[a-z][a-z0-9+.-]*", scheme):
        if len(value) > MAX_URI_LENGTH or any(c.isspace() for c in value) or "#" in value or "*" in value:
            raise AccountError(f"`{value[:80]}` is not a usable redirect URI", "redirect_uris")
        return value
    return check_url(value, "redirect_uris")


def check_origin(value: str) -> str:
    check_url(value, "allowed_origins", allow_path=False)
    return value.rstrip("/")


def _modulus_bits(n: Any) -> int:
    if not isinstance(n, str):
        raise TypeError("no modulus `n`")
    return int.from_bytes(base64.urlsafe_b64decode(n + "=" * (-len(n) % 4)), "big").bit_length()


def _check_key(key: Any, index: int) -> dict[str, Any]:
    where = f"jwks.keys[{index}]"
    if not isinstance(key, dict):
        raise AccountError(f"{where} is not a JSON object", "jwks")
    private = sorted(_PRIVATE_MEMBERS & set(key))
    if private:
        raise AccountError(f"{where} contains private key material ({', '.join(private)}); register only the "
                           "public key and keep the private key with the client", "jwks")
    kid, alg, kty = key.get("kid"), key.get("alg"), key.get("kty")
    if not isinstance(kid, str) or not kid.strip() or len(kid) > 256:
        raise AccountError(f"{where} has no `kid`: SMART clients pick their signing key by kid", "jwks")
    if alg not in KEY_ALGORITHMS:
        raise AccountError(f"{where} (kid {kid}): `alg` must be RS384 or ES384, not {alg!r}", "jwks")
    if kty != KEY_ALGORITHMS[alg]:
        raise AccountError(f"{where} (kid {kid}): alg {alg} needs kty {KEY_ALGORITHMS[alg]}, not {kty!r}", "jwks")
    if key.get("use", "sig") != "sig":
        raise AccountError(f"{where} (kid {kid}): `use` must be sig", "jwks")
    try:
        if kty == "RSA":
            bits = _modulus_bits(key.get("n"))
            if bits < MIN_RSA_BITS:  # checked before importing: joserfc only warns about short keys
                raise AccountError(f"{where} (kid {kid}): an RSA key needs at least {MIN_RSA_BITS} bits, "
                                   f"this one has {bits}", "jwks")
            imported: RSAKey | ECKey = RSAKey.import_key(key)
        else:
            if key.get("crv") != "P-384":
                raise AccountError(f"{where} (kid {kid}): ES384 needs crv P-384", "jwks")
            imported = ECKey.import_key(key)
    except (ValueError, TypeError, KeyError, JoseError) as exc:
        raise AccountError(f"{where} (kid {kid}) is not a valid {kty} public key: {exc or type(exc).__name__}",
                           "jwks") from None
    if imported.is_private:
        raise AccountError(f"{where} (kid {kid}) is a private key; register only the public key", "jwks")
    return {name: key[name] for name in _PUBLIC_MEMBERS if name in key}


def check_jwks(jwks: Any) -> dict[str, Any]:
    """The JWKS reduced to public members of valid RS384/ES384 signing keys with unique `kid`s."""
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise AccountError("`jwks` must be a JSON Web Key Set: {\"keys\": [...]}", "jwks")
    keys = jwks["keys"]
    if not 1 <= len(keys) <= MAX_KEYS:
        raise AccountError(f"`jwks` must hold 1 to {MAX_KEYS} keys", "jwks")
    checked = [_check_key(key, i) for i, key in enumerate(keys)]
    kids = [k["kid"] for k in checked]
    if len(set(kids)) != len(kids):
        raise AccountError("`jwks` has two keys with the same kid", "jwks")
    return {"keys": checked}


def check_client_id(value: str) -> str:
    if not _CLIENT_ID.fullmatch(value):
        raise AccountError(f"`{value[:80]}` is not a usable client id (1-64 of A-Z a-z 0-9 . _ ~ -, starting "
                           "with a letter or digit)", "client_id")
    return value


def check_username(value: str) -> str:
    if not _USERNAME.fullmatch(value):
        raise AccountError(f"`{value[:80]}` is not a usable username (1-128 of A-Z a-z 0-9 . _ @ + -, starting "
                           "with a letter or digit)", "username")
    return value


def check_role(value: str) -> str:
    if value not in roles.ROLES:
        raise AccountError(f"`{value}` is not a role; roles: {', '.join(roles.ROLES)}", "role")
    return value


def check_patient_id(value: str) -> str:
    value = value.removeprefix("Patient/")
    if not _FHIR_ID.fullmatch(value):
        raise AccountError(f"`{value[:80]}` is not a Patient id", "patient")
    return value


def check_fhir_user(value: str, role: str) -> str:
    allowed = PATIENT_FHIR_USER_TYPES if role == "patient" else STAFF_FHIR_USER_TYPES
    resource_type, _, id = value.partition("/")
    if resource_type not in allowed or not _FHIR_ID.fullmatch(id):
        raise AccountError(f"`{value[:80]}`: fhir_user must be a relative reference to one of "
                           f"{', '.join(allowed)} (e.g. {allowed[0]}/123) for role {role}", "fhir_user")
    return value


def check_password(value: Any) -> str:
    if not isinstance(value, str) or not passwords.MIN_LENGTH <= len(value) <= passwords.MAX_LENGTH:
        raise AccountError(f"a password must have {passwords.MIN_LENGTH} to {passwords.MAX_LENGTH} characters",
                           "password")
    return value


# --- clients -------------------------------------------------------------------------------------------------

def new_secret() -> str:
    return secrets.token_urlsafe(SECRET_BYTES)


def _build_client(fields: Mapping[str, Any], client_id: str, kind: str, secret_hash: str | None) -> Client:
    """A fully checked Client from `fields` (all members, as after a merge).

    Credentials follow the kind (auth/authlib_adapter.py accepts exactly these): public -> none (PKCE);
    confidential -> the generated secret; backend -> private_key_jwt with the registered keys. A backend
    client with redirect URIs may also use the code flow (SMART `client-confidential-asymmetric`)."""
    name = _text(fields, "name", required=True, limit=MAX_NAME_LENGTH)
    redirect_uris = tuple(check_redirect_uri(u, kind) for u in _texts(fields, "redirect_uris"))
    scope_text = _text(fields, "scope", required=True, limit=scopes.MAX_SCOPES * 64) or ""
    scope = check_scope(scope_text, kind, user_facing=kind != "backend" or bool(redirect_uris))
    origins = tuple(dict.fromkeys(check_origin(o) for o in _texts(fields, "allowed_origins")))
    launch_uri = _text(fields, "launch_uri")
    if launch_uri:
        check_url(launch_uri, "launch_uri")
    jwks = check_jwks(fields["jwks"]) if fields.get("jwks") is not None else None
    jwks_uri = _text(fields, "jwks_uri")
    if jwks_uri:
        check_url(jwks_uri, "jwks_uri")
    if jwks is not None and jwks_uri:
        raise AccountError("give `jwks` or `jwks_uri`, not both", "jwks_uri")
    if kind == "backend":
        if jwks is None and not jwks_uri:
            raise AccountError("a backend client needs its public keys: `jwks` (--jwks FILE) or `jwks_uri` "
                               "(--jwks-uri URL)", "jwks")
    elif jwks is not None or jwks_uri:
        proof = "it proves itself with PKCE" if kind == "public" else "it authenticates with its secret"
        raise AccountError(f"a {kind} client has no keys ({proof}); register a backend client (with redirect "
                           "URIs for the code flow) to authenticate with keys", "jwks")
    elif not redirect_uris:
        raise AccountError(f"a {kind} client needs at least one exact redirect URI (--redirect-uri)",
                           "redirect_uris")
    if launch_uri and not redirect_uris:
        raise AccountError("a launch URI needs redirect URIs (the EHR launch continues with the code flow)",
                           "launch_uri")
    return Client(client_id=client_id, name=name or "", kind=kind, scope=scope, redirect_uris=redirect_uris,
                  secret_hash=secret_hash, jwks=jwks, jwks_uri=jwks_uri, allowed_origins=origins,
                  launch_uri=launch_uri, active=_flag(fields, "active", True))


async def create_client(store: AuthStore, fields: Mapping[str, Any]) -> tuple[Client, str | None]:
    """Register a client; returns it and, for a confidential client, its new secret (the only
    time the secret exists outside the caller's hands: only its argon2 hash is stored)."""
    _unknown(fields, CLIENT_FIELDS)
    kind = _text(fields, "kind", required=True) or ""
    if kind not in CLIENT_KINDS:
        raise AccountError(f"`{kind}` is not a client kind; kinds: {', '.join(CLIENT_KINDS)}", "kind")
    client_id = check_client_id(_text(fields, "client_id") or secrets.token_hex(10))
    secret = new_secret() if kind == "confidential" else None
    client = _build_client(fields, client_id, kind, passwords.hash_password(secret) if secret else None)
    if not await store.add_client(client):  # insert, not upsert: never overwrite
        raise AccountExists(f"a client with id {client_id} is already registered") from None
    return client, secret


async def get_client(store: AuthStore, client_id: str) -> Client:
    client = await store.get_client(client_id)
    if client is None:
        raise AccountNotFound(f"no client with id {client_id}")
    return client


async def update_client(store: AuthStore, client_id: str, changes: Mapping[str, Any]) -> tuple[Client, str | None]:
    """Change the given members (the others keep their values); `rotate_secret: true` issues a new secret
    for a confidential client and returns it once. Deactivating revokes the client's tokens."""
    _unknown(changes, CLIENT_CHANGES)
    current = await get_client(store, client_id)
    rotate = _flag(changes, "rotate_secret", False)
    merged: dict[str, Any] = {
        "name": current.name, "scope": current.scope, "redirect_uris": list(current.redirect_uris),
        "allowed_origins": list(current.allowed_origins), "launch_uri": current.launch_uri,
        "jwks": current.jwks, "jwks_uri": current.jwks_uri, "active": current.active}
    merged.update({k: v for k, v in changes.items() if k != "rotate_secret"})
    if changes.get("jwks") is not None:
        merged["jwks_uri"] = changes.get("jwks_uri")  # a new key set replaces a key URL, and the other way
    if changes.get("jwks_uri"):
        merged["jwks"] = changes.get("jwks")
    secret: str | None = None
    secret_hash = current.secret_hash
    if current.kind == "confidential" and (rotate or secret_hash is None):
        secret = new_secret()
        secret_hash = passwords.hash_password(secret)
    elif rotate:
        raise AccountError(f"a {current.kind} client has no secret to rotate", "rotate_secret")
    client = _build_client(merged, client_id, current.kind, secret_hash)
    await store.put_client(client)
    if (current.active and not client.active) or (secret is not None and current.secret_hash is not None):
        await store.revoke_client_tokens(client_id)
    return client, secret


async def set_client_active(store: AuthStore, client_id: str, active: bool) -> Client:
    client, _ = await update_client(store, client_id, {"active": active})
    return client


async def remove_client(store: AuthStore, client_id: str) -> int:
    """Revoke the client's tokens, then delete it; returns how many tokens were revoked."""
    await get_client(store, client_id)
    revoked = await store.revoke_client_tokens(client_id)
    await store.delete_client(client_id)
    return revoked


def client_view(client: Client) -> dict[str, Any]:
    """What may be shown of a client: everything but the secret's hash (whose presence is a flag)."""
    return {"client_id": client.client_id, "name": client.name, "kind": client.kind, "scope": client.scope,
            "redirect_uris": list(client.redirect_uris), "allowed_origins": list(client.allowed_origins),
            "launch_uri": client.launch_uri, "jwks": client.jwks, "jwks_uri": client.jwks_uri,
            "has_secret": client.secret_hash is not None, "active": client.active}


# --- users ---------------------------------------------------------------------------------------------------

def _check_links(role: str, fhir_user: str | None, patient: str | None) -> tuple[str | None, str | None]:
    """(fhir_user, patient) that fit `role`: a portal user must name their Patient, staff must not."""
    if role == "patient":
        if not patient:
            raise AccountError("role patient needs the linked Patient's id (`patient`, --patient ID)", "patient")
        patient = check_patient_id(patient)
        fhir_user = check_fhir_user(fhir_user, role) if fhir_user else f"Patient/{patient}"
        if fhir_user.startswith("Patient/") and fhir_user != f"Patient/{patient}":
            raise AccountError(f"fhir_user {fhir_user} is not the linked Patient/{patient}", "fhir_user")
        return fhir_user, patient
    if patient:
        raise AccountError(f"only role patient is linked to a Patient; {role} staff see what their role allows",
                           "patient")
    return (check_fhir_user(fhir_user, role) if fhir_user else None), None


async def create_user(store: AuthStore, fields: Mapping[str, Any]) -> User:
    _unknown(fields, USER_FIELDS)
    username = check_username(_text(fields, "username", required=True) or "")
    role = check_role(_text(fields, "role", required=True) or "")
    password = check_password(fields.get("password"))
    fhir_user, patient = _check_links(role, _text(fields, "fhir_user"), _text(fields, "patient"))
    user = User(username=username, password_hash=passwords.hash_password(password), role=role,
                fhir_user=fhir_user, patient=patient, active=_flag(fields, "active", True))
    if not await store.add_user(user):  # insert, not upsert: never overwrite
        raise AccountExists(f"a user named {username} already exists") from None
    return user


async def get_user(store: AuthStore, username: str) -> User:
    user = await store.get_user(username)
    if user is None:
        raise AccountNotFound(f"no user named {username}")
    return user


async def update_user(store: AuthStore, username: str, changes: Mapping[str, Any]) -> User:
    """Change the given members. Moving a portal user to a staff role drops their Patient link; a new
    password also clears a lockout. A new password or deactivation revokes the user's tokens."""
    _unknown(changes, USER_CHANGES)
    current = await get_user(store, username)
    role = check_role(_text(changes, "role", required=True) or "") if "role" in changes else current.role
    fhir_user = _text(changes, "fhir_user") if "fhir_user" in changes else current.fhir_user
    patient = _text(changes, "patient") if "patient" in changes else current.patient
    if role != "patient" and "patient" not in changes:
        patient = None
        if "fhir_user" not in changes and fhir_user and fhir_user.split("/")[0] not in STAFF_FHIR_USER_TYPES:
            fhir_user = None
    if role == "patient" and current.role != "patient" and "fhir_user" not in changes:
        fhir_user = None  # a staff reference never carries over to a portal account
    fhir_user, patient = _check_links(role, fhir_user, patient)
    user = replace(current, role=role, fhir_user=fhir_user, patient=patient,
                   active=_flag(changes, "active", current.active))
    if not _is_admin(user):
        await _keep_an_admin(store, current)
    new_password = "password" in changes
    if new_password:
        user = replace(user, password_hash=passwords.hash_password(check_password(changes["password"])),
                       failed_logins=0, locked_until=None)
    await store.put_user(user)
    if new_password or (current.active and not user.active):
        await store.revoke_user_tokens(username)
    return user


async def unlock_user(store: AuthStore, username: str) -> User:
    await get_user(store, username)
    user = await store.update_user(username, {"failed_logins": 0, "locked_until": None})
    if user is None:
        raise AccountNotFound(f"no user named {username}")
    return user


async def remove_user(store: AuthStore, username: str) -> int:
    """Revoke the user's tokens, then delete them; returns how many tokens were revoked."""
    await _keep_an_admin(store, await get_user(store, username))
    revoked = await store.revoke_user_tokens(username)
    await store.delete_user(username)
    return revoked


def _is_admin(user: User) -> bool:
    return user.active and user.role == ADMINISTRATOR


async def _keep_an_admin(store: AuthStore, leaving: User) -> None:
    """Refuse to remove, disable or demote the last active administrator: nobody could use the admin API
    afterwards (the CLI, with database access, is the way back: `users add … --role administrator`)."""
    if not _is_admin(leaving):
        return
    if not await store.other_active_users(ADMINISTRATOR, leaving.username):
        raise AccountConflict(f"{leaving.username} is the last active administrator; make another "
                              "administrator first")


def user_view(user: User, now: datetime) -> dict[str, Any]:
    """What may be shown of a user: never the password hash."""
    locked_until = user.locked_until
    if locked_until is not None and locked_until.tzinfo is None:
        locked_until = locked_until.replace(tzinfo=now.tzinfo)
    locked = locked_until is not None and locked_until > now
    return {"username": user.username, "role": user.role, "fhir_user": user.fhir_user, "patient": user.patient,
            "active": user.active, "locked": locked, "locked_until": locked_until.isoformat() if locked else None,
            "failed_logins": user.failed_logins}
