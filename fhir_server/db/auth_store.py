"""What SMART login keeps in MongoDB: clients, users, tokens, codes, launches, replay guards, signing keys.

Why in the FHIR database (not memory): several server processes share one store, and introspection and
revocation must be exact across them and across restarts. Every secret a client presents (access and
refresh tokens, authorization codes, launch ids, login sessions) is stored only as its SHA-256, so a copy
of the database does not hand out sessions. Expiry is enforced by the reads here (`exp` compared with the
caller's clock), and TTL indexes clean up behind.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

CLIENTS = "auth_clients"
USERS = "auth_users"
TOKENS = "auth_tokens"
CODES = "auth_codes"
LAUNCHES = "auth_launches"
JTIS = "auth_jtis"
KEYS = "auth_keys"
SESSIONS = "auth_sessions"
ATTEMPTS = "auth_login_attempts"


def digest(secret: str) -> str:
    """How a bearer secret is keyed at rest."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Client:
    """A registered app. `kind`: `public` (browser/native, PKCE only), `confidential` (secret),
    `backend` (private_key_jwt, client_credentials). `scope` is the widest set it may be granted."""

    client_id: str
    name: str
    kind: str
    scope: str
    redirect_uris: tuple[str, ...] = ()
    secret_hash: str | None = None
    jwks: dict[str, Any] | None = None
    jwks_uri: str | None = None
    allowed_origins: tuple[str, ...] = ()
    launch_uri: str | None = None  # where the EHR launcher sends `iss` and `launch` (EHR launch)
    active: bool = True

    def to_doc(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["_id"] = doc.pop("client_id")
        doc["redirect_uris"] = list(self.redirect_uris)
        doc["allowed_origins"] = list(self.allowed_origins)
        return doc

    @staticmethod
    def from_doc(doc: dict[str, Any]) -> Client:
        data = {k: v for k, v in doc.items() if k in Client.__dataclass_fields__}
        data["client_id"] = doc["_id"]
        data["redirect_uris"] = tuple(doc.get("redirect_uris") or ())
        data["allowed_origins"] = tuple(doc.get("allowed_origins") or ())
        return Client(**data)


@dataclass(frozen=True)
class User:
    """A person who signs in. Staff carry a role (auth/roles.py) and usually a `fhir_user` such as
    `Practitioner/123`; portal users have role `patient` and `patient` set to their Patient id."""

    username: str
    password_hash: str
    role: str
    fhir_user: str | None = None
    patient: str | None = None
    active: bool = True
    failed_logins: int = 0
    locked_until: datetime | None = None

    def to_doc(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["_id"] = doc.pop("username")
        return doc

    @staticmethod
    def from_doc(doc: dict[str, Any]) -> User:
        data = {k: v for k, v in doc.items() if k in User.__dataclass_fields__}
        data["username"] = doc["_id"]
        return User(**data)


@dataclass(frozen=True)
class Grant:
    """What a token stands for: the context it was issued in. Copied unchanged from a code to its tokens
    and from a refresh token to the next pair, so launch context survives refresh."""

    client_id: str
    scope: str
    aud: str
    user: str | None = None
    fhir_user: str | None = None
    patient: str | None = None
    encounter: str | None = None
    fhir_context: tuple[dict[str, Any], ...] = ()
    need_patient_banner: bool = False
    id_token_issued: bool = False

    def to_doc(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["fhir_context"] = list(self.fhir_context)
        return doc

    @staticmethod
    def from_doc(doc: dict[str, Any]) -> Grant:
        data = {k: v for k, v in doc.items() if k in Grant.__dataclass_fields__}
        data["fhir_context"] = tuple(doc.get("fhir_context") or ())
        return Grant(**data)


@dataclass(frozen=True)
class TokenRecord:
    kind: str  # access | refresh
    grant: Grant
    issued_at: datetime
    expires_at: datetime
    family: str  # the first refresh token's digest: revoking one member revokes the chain
    revoked: bool = False

    def active(self, now: datetime) -> bool:
        return not self.revoked and now < self.expires_at


@dataclass
class AuthStore:
    """`cache_seconds`: how long the resource server may reuse a token, client or user record it read.
    Expiry is still checked on every request against the record's own time. Revocations and account
    changes made through this store drop what it cached at once; those made by another server process
    apply within `cache_seconds` (0: read everything on every request). Introspection never uses it."""

    database: AsyncDatabase[dict[str, Any]]
    cache_seconds: float = 0.0
    _indexed: bool = field(default=False, repr=False)
    _recent: dict[tuple[str, str], tuple[float, Any]] = field(default_factory=dict, repr=False)

    async def _cached(self, kind: str, key: str, load: Any) -> Any:
        now = time.monotonic()
        hit = self._recent.get((kind, digest(key) if kind == "token" else key))
        if hit is not None and now - hit[0] < self.cache_seconds:
            return hit[1]
        value = await load(key)
        if kind == "token":
            key = digest(key)  # a bearer secret is not kept in memory longer than its request
        if self.cache_seconds > 0:
            if len(self._recent) > 10_000:
                self._recent.clear()
            self._recent[(kind, key)] = (now, value)
        return value

    async def recent_token(self, secret: str) -> TokenRecord | None:
        return await self._cached("token", secret, self.load_token)  # type: ignore[no-any-return]

    def _forget_tokens(self) -> None:
        for key in [k for k in self._recent if k[0] == "token"]:
            self._recent.pop(key, None)

    async def recent_client(self, client_id: str) -> Client | None:
        return await self._cached("client", client_id, self.get_client)  # type: ignore[no-any-return]

    async def recent_user(self, username: str) -> User | None:
        return await self._cached("user", username, self.get_user)  # type: ignore[no-any-return]

    def _forget(self, kind: str, key: str) -> None:
        self._recent.pop((kind, key), None)

    async def ensure_indexes(self) -> None:
        db = self.database
        for name in (TOKENS, CODES, LAUNCHES, JTIS, SESSIONS, ATTEMPTS):
            await db[name].create_index([("expires_at", ASCENDING)], expireAfterSeconds=0)
        await db[TOKENS].create_index([("family", ASCENDING)])
        self._indexed = True

    # --- clients and users -------------------------------------------------------------------------
    async def put_client(self, client: Client) -> None:
        self._forget("client", client.client_id)
        await self.database[CLIENTS].replace_one({"_id": client.client_id}, client.to_doc(), upsert=True)

    async def add_client(self, client: Client) -> bool:
        """Register a new client; False (and nothing written) if the id is taken."""
        try:
            await self.database[CLIENTS].insert_one(client.to_doc())
        except DuplicateKeyError:
            return False
        self._forget("client", client.client_id)
        return True

    async def get_client(self, client_id: str) -> Client | None:
        doc = await self.database[CLIENTS].find_one({"_id": client_id})
        return Client.from_doc(doc) if doc else None

    async def list_clients(self) -> list[Client]:
        return [Client.from_doc(d) async for d in self.database[CLIENTS].find({}).sort("_id", 1)]

    async def delete_client(self, client_id: str) -> bool:
        self._forget("client", client_id)
        return (await self.database[CLIENTS].delete_one({"_id": client_id})).deleted_count == 1

    async def put_user(self, user: User) -> None:
        self._forget("user", user.username)
        await self.database[USERS].replace_one({"_id": user.username}, user.to_doc(), upsert=True)

    async def add_user(self, user: User) -> bool:
        """Create a new user; False (and nothing written) if the name is taken."""
        try:
            await self.database[USERS].insert_one(user.to_doc())
        except DuplicateKeyError:
            return False
        self._forget("user", user.username)
        return True

    async def other_active_users(self, role: str, besides: str) -> bool:
        return bool(await self.database[USERS].count_documents(
            {"role": role, "active": True, "_id": {"$ne": besides}}, limit=1))

    async def has_accounts(self) -> bool:
        return bool(await self.database[CLIENTS].count_documents({}, limit=1)
                    or await self.database[USERS].count_documents({}, limit=1))

    async def get_user(self, username: str) -> User | None:
        doc = await self.database[USERS].find_one({"_id": username})
        return User.from_doc(doc) if doc else None

    async def list_users(self) -> list[User]:
        return [User.from_doc(d) async for d in self.database[USERS].find({}).sort("_id", 1)]

    async def delete_user(self, username: str) -> bool:
        self._forget("user", username)
        return (await self.database[USERS].delete_one({"_id": username})).deleted_count == 1

    async def update_user(self, username: str, changes: dict[str, Any]) -> User | None:
        self._forget("user", username)
        doc = await self.database[USERS].find_one_and_update({"_id": username}, {"$set": changes},
                                                            return_document=ReturnDocument.AFTER)
        return User.from_doc(doc) if doc else None

    # --- tokens ---------------------------------------------------------------------------------------
    async def save_token(self, secret: str, kind: str, grant: Grant, issued_at: datetime, lifetime: timedelta,
                         family: str | None = None) -> TokenRecord:
        key = digest(secret)
        record = TokenRecord(kind, grant, issued_at, issued_at + lifetime, family or key)
        await self.database[TOKENS].insert_one({"_id": key, "kind": kind, "grant": grant.to_doc(),
                                                "issued_at": issued_at, "expires_at": record.expires_at,
                                                "family": record.family, "revoked": False})
        return record

    async def load_token(self, secret: str) -> TokenRecord | None:
        """The token's record whatever its state (callers check `active(now)`)."""
        doc = await self.database[TOKENS].find_one({"_id": digest(secret)})
        if doc is None:
            return None
        return TokenRecord(doc["kind"], Grant.from_doc(doc["grant"]), _utc(doc["issued_at"]),
                           _utc(doc["expires_at"]), doc["family"], bool(doc.get("revoked")))

    async def revoke_token(self, secret: str) -> bool:
        """Revoke the token and, for a refresh token, its whole chain and the access tokens it minted."""
        self._forget_tokens()
        doc = await self.database[TOKENS].find_one({"_id": digest(secret)}, {"family": 1})
        if doc is None:
            return False
        await self.database[TOKENS].update_many({"family": doc["family"]}, {"$set": {"revoked": True}})
        await self.database[TOKENS].update_one({"_id": digest(secret)}, {"$set": {"revoked": True}})
        return True

    async def revoke_user_tokens(self, username: str) -> int:
        self._forget_tokens()
        result = await self.database[TOKENS].update_many({"grant.user": username}, {"$set": {"revoked": True}})
        return result.modified_count

    async def revoke_client_tokens(self, client_id: str) -> int:
        self._forget_tokens()
        result = await self.database[TOKENS].update_many({"grant.client_id": client_id}, {"$set": {"revoked": True}})
        return result.modified_count

    # --- single-use secrets: codes, launch ids, login sessions ----------------------------------------
    async def put_once(self, collection: str, secret: str, data: dict[str, Any], expires_at: datetime) -> None:
        await self.database[collection].insert_one({"_id": digest(secret), "data": data, "expires_at": expires_at})

    async def take_once(self, collection: str, secret: str, now: datetime) -> dict[str, Any] | None:
        """The data stored under `secret`, deleted in the same step so it can be used exactly once."""
        doc = await self.database[collection].find_one_and_delete({"_id": digest(secret)})
        if doc is None or _utc(doc["expires_at"]) <= now:
            return None
        data: dict[str, Any] = doc["data"]
        return data

    async def peek(self, collection: str, secret: str, now: datetime) -> dict[str, Any] | None:
        doc = await self.database[collection].find_one({"_id": digest(secret)})
        if doc is None or _utc(doc["expires_at"]) <= now:
            return None
        data: dict[str, Any] = doc["data"]
        return data

    async def forget(self, collection: str, secret: str) -> None:
        await self.database[collection].delete_one({"_id": digest(secret)})

    async def first_use(self, issuer: str, jti: str, expires_at: datetime) -> bool:
        """True the first time (issuer, jti) is seen; a replayed assertion gets False."""
        try:
            await self.database[JTIS].insert_one({"_id": f"{issuer}\n{jti}", "expires_at": expires_at})
        except DuplicateKeyError:
            return False
        return True

    # --- signing keys ----------------------------------------------------------------------------------
    async def signing_keys(self) -> list[dict[str, Any]]:
        """Private JWKs (newest first); the auth server creates the first one on start-up."""
        return [d["jwk"] async for d in self.database[KEYS].find({}).sort("created", -1)]

    async def add_signing_key(self, kid: str, jwk: dict[str, Any], created: datetime) -> bool:
        try:
            await self.database[KEYS].insert_one({"_id": kid, "jwk": jwk, "created": created})
        except DuplicateKeyError:
            return False
        return True


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)
