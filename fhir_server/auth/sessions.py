"""Browser sign-in sessions, CSRF tokens, and authorization requests in progress.

Why server-side: the session cookie is only a random id (HttpOnly, SameSite=Lax, path /auth); the user,
the CSRF token and the authorization request being worked through live in MongoDB under the id's
SHA-256 (AuthStore.put_once), so any server process can continue a flow another one started and a copy
of the database reveals no live session. Each form carries the session's CSRF token, compared in
constant time; signing in replaces the session id (no fixation). An authorization request in progress
(`tx`) is bound to the session that started it, so a `tx` id leaked to another browser is useless.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from fhir_server.db.auth_store import SESSIONS, AuthStore, digest

COOKIE = "fhir_auth_session"
SESSION_SECONDS = 8 * 3600
TX_SECONDS = 15 * 60
MAX_ID = 128


@dataclass(frozen=True)
class BrowserSession:
    sid: str
    user: str | None
    csrf: str
    auth_time: int | None

    def csrf_ok(self, submitted: str | None) -> bool:
        return bool(submitted) and hmac.compare_digest(self.csrf.encode(), (submitted or "").encode())


async def load(store: AuthStore, request: Request, now: datetime) -> BrowserSession | None:
    sid = request.cookies.get(COOKIE)
    if not sid or len(sid) > MAX_ID:
        return None
    data = await store.peek(SESSIONS, sid, now)
    if not data or data.get("kind") != "browser":
        return None
    return BrowserSession(sid, data.get("user"), data["csrf"], data.get("auth_time"))


async def create(store: AuthStore, now: datetime, user: str | None = None) -> BrowserSession:
    session = BrowserSession(secrets.token_urlsafe(32), user, secrets.token_urlsafe(32),
                             int(now.timestamp()) if user else None)
    await store.put_once(SESSIONS, session.sid, {"kind": "browser", "user": user, "csrf": session.csrf,
                                                 "auth_time": session.auth_time},
                         now + timedelta(seconds=SESSION_SECONDS))
    return session


async def ensure(store: AuthStore, request: Request, now: datetime) -> tuple[BrowserSession, bool]:
    """The request's session, or a new anonymous one (second value True: set the cookie)."""
    session = await load(store, request, now)
    if session is not None:
        return session, False
    return await create(store, now), True


async def sign_in(store: AuthStore, old: BrowserSession | None, user: str, now: datetime) -> BrowserSession:
    if old is not None:
        await store.forget(SESSIONS, old.sid)
    return await create(store, now, user)


async def sign_out(store: AuthStore, session: BrowserSession) -> None:
    await store.forget(SESSIONS, session.sid)


def set_cookie(response: Response, session: BrowserSession, secure: bool) -> None:
    response.set_cookie(COOKIE, session.sid, max_age=SESSION_SECONDS, path="/auth", secure=secure,
                        httponly=True, samesite="lax")


# --- authorization requests in progress -------------------------------------------------------------
async def start_tx(store: AuthStore, session: BrowserSession, params: list[tuple[str, str]],
                   now: datetime) -> str:
    tx = secrets.token_urlsafe(24)
    await store.put_once(SESSIONS, tx, {"kind": "authorize", "sid": digest(session.sid),
                                        "params": [list(p) for p in params]},
                         now + timedelta(seconds=TX_SECONDS))
    return tx


async def load_tx(store: AuthStore, tx: str | None, session: BrowserSession | None,
                  now: datetime) -> dict[str, Any] | None:
    """The request in progress, if it exists, has not expired and belongs to this browser session."""
    if not tx or len(tx) > MAX_ID or session is None:
        return None
    data = await store.peek(SESSIONS, tx, now)
    if not data or data.get("kind") != "authorize" or not hmac.compare_digest(data["sid"], digest(session.sid)):
        return None
    return data


async def update_tx(store: AuthStore, tx: str, changes: dict[str, Any]) -> None:
    await store.database[SESSIONS].update_one({"_id": digest(tx)},
                                              {"$set": {f"data.{k}": v for k, v in changes.items()}})


async def finish_tx(store: AuthStore, tx: str) -> bool:
    """Forget the request; False when another submission already finished it (double submit)."""
    result = await store.database[SESSIONS].delete_one({"_id": digest(tx)})
    return result.deleted_count == 1
