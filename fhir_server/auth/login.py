"""Checking a username and password: lockout after repeated failures, and a per-address rate limit.

Why the lockout lives on the user document: every server process sees the same count. The rate limit is
per client address and also kept in MongoDB (one counter document per address and minute), so it holds
across processes too. Both answer with the same message whether the user exists or not.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from fhir_server.auth.passwords import hash_password, needs_rehash, verify_password
from fhir_server.config import Settings
from fhir_server.db.auth_store import ATTEMPTS, AuthStore, User

# A real hash for a password nobody has: verifying against it costs what a real user's check costs, so
# timing does not tell whether a username exists.
_DUMMY_HASH = hash_password("not-a-real-password-0")


@dataclass(frozen=True)
class LoginRefused(Exception):
    """`status` 401 for bad credentials (and locked accounts: a locked account does not reveal itself),
    429 for too many attempts from one address."""

    status: int
    message: str


async def check_rate(store: AuthStore, settings: Settings, address: str, now: datetime) -> None:
    minute = now.replace(second=0, microsecond=0)
    key = f"{address}\n{minute.isoformat()}"
    doc = await store.database[ATTEMPTS].find_one_and_update(
        {"_id": key}, {"$inc": {"n": 1}, "$setOnInsert": {"expires_at": minute + timedelta(minutes=2)}},
        upsert=True, return_document=True)
    if doc is not None and doc["n"] > settings.login_attempts_per_minute:
        raise LoginRefused(429, "Too many sign-in attempts from this address; wait a minute and try again")


async def verify_login(store: AuthStore, settings: Settings, username: str, password: str, address: str,
                       now: datetime) -> User:
    """The user, if `password` is right and the account is active and not locked; else LoginRefused."""
    await check_rate(store, settings, address, now)
    refused = LoginRefused(401, "The username or password is wrong, or the account is locked")
    user = await store.get_user(username) if 0 < len(username) <= 256 else None
    if user is None:
        verify_password(_DUMMY_HASH, password)
        raise refused
    locked_until = user.locked_until
    if locked_until is not None and locked_until.tzinfo is None:
        locked_until = locked_until.replace(tzinfo=now.tzinfo)
    if locked_until is not None and locked_until > now:
        verify_password(_DUMMY_HASH, password)
        raise refused
    if not verify_password(user.password_hash, password) or not user.active:
        failures = user.failed_logins + 1
        changes: dict[str, object] = {"failed_logins": failures}
        if failures >= settings.login_max_failures:
            changes = {"failed_logins": 0, "locked_until": now + timedelta(seconds=settings.login_lockout_seconds)}
        await store.update_user(username, changes)
        raise refused
    changes = {"failed_logins": 0, "locked_until": None}
    if needs_rehash(user.password_hash):
        changes["password_hash"] = hash_password(password)
    updated = await store.update_user(username, changes)
    return updated or user
