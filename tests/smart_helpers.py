"""Helpers for tests that need SMART tokens from a running server (auth="on").

Typical use (a test with the conftest's `mongodb_uri`, `start_server`, `database_name`):

    settings = Settings(mongodb_uri=mongodb_uri, database=database_name(), auth="on")
    running = start_server(settings)
    register_user(settings, "dr", "doctor", fhir_user="Practitioner/p1")
    register_public_client(settings, "app", scope="launch/patient openid fhirUser offline_access patient/*.rs")
    token = code_flow(running.url, "app", "dr", scope="launch/patient openid fhirUser patient/*.rs",
                      patient="123")
    headers = {"Authorization": f"Bearer {token['access_token']}"}

    key = register_backend_client(settings, "bulk", scope="system/*.rs")
    token = backend_token(running.url, "bulk", key, scope="system/Patient.rs")

Clients and users are written straight into the server's database through AuthStore (the same code the
server reads with), so the tests exercise the real HTTP flows and nothing is mocked. Passwords are
hashed with argon2 (~50 ms each), so register users once per module where you can.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import hashlib
import re
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey
from pymongo import AsyncMongoClient

from fhir_server.auth.passwords import hash_password
from fhir_server.config import Settings
from fhir_server.db.auth_store import AuthStore, Client, Grant, User

if TYPE_CHECKING:
    from tests.conftest import RunningServer

T = TypeVar("T")
REDIRECT_URI = "https://app.example.test/callback"  # never contacted: tests stop at the redirect to it
PASSWORD = "correct horse battery"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


# --- writing clients and users -------------------------------------------------------------------------
def with_store(settings: Settings, work: Callable[[AuthStore], Awaitable[T]]) -> T:
    """Run `work(store)` against the server's database (from a plain test; when an event loop already
    runs in this thread, e.g. under Playwright's sync API, in a helper thread)."""

    async def run() -> T:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongodb_uri, tz_aware=True)
        try:
            return await work(AuthStore(client[settings.database]))
        finally:
            await client.close()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(run())
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(run())).result()


def register_client(settings: Settings, client: Client) -> Client:
    with_store(settings, lambda store: store.put_client(client))
    return client


def register_public_client(settings: Settings, client_id: str, scope: str,
                           redirect_uris: tuple[str, ...] = (REDIRECT_URI,), launch_uri: str | None = None,
                           allowed_origins: tuple[str, ...] = ()) -> Client:
    return register_client(settings, Client(client_id, f"App {client_id}", "public", scope, redirect_uris,
                                            launch_uri=launch_uri, allowed_origins=allowed_origins))


def register_confidential_client(settings: Settings, client_id: str, scope: str, secret: str = "s3cret-s3cret",
                                 redirect_uris: tuple[str, ...] = (REDIRECT_URI,),
                                 launch_uri: str | None = None) -> Client:
    return register_client(settings, Client(client_id, f"App {client_id}", "confidential", scope, redirect_uris,
                                            secret_hash=hash_password(secret), launch_uri=launch_uri))


@dataclass(frozen=True)
class BackendKey:
    """A client's private key for assertions, and the alg/kid to sign with."""

    key: Any
    alg: str
    kid: str

    def public_jwks(self) -> dict[str, Any]:
        return {"keys": [{**self.key.as_dict(private=False), "kid": self.kid, "alg": self.alg, "use": "sig"}]}


def new_backend_key(alg: str = "ES384", kid: str | None = None) -> BackendKey:
    """A fresh ES384 (P-384) or RS384 (2048-bit) key."""
    key = ECKey.generate_key("P-384", private=True) if alg.startswith("ES") else RSAKey.generate_key(2048, private=True)
    return BackendKey(key, alg, kid or uuid.uuid4().hex)


def register_backend_client(settings: Settings, client_id: str, scope: str, alg: str = "ES384",
                            key: BackendKey | None = None, jwks_uri: str | None = None) -> BackendKey:
    """Register a private_key_jwt client (public keys by value unless `jwks_uri`); returns its key."""
    key = key or new_backend_key(alg)
    register_client(settings, Client(client_id, f"Service {client_id}", "backend", scope,
                                     jwks=None if jwks_uri else key.public_jwks(), jwks_uri=jwks_uri))
    return key


def register_user(settings: Settings, username: str, role: str, password: str = PASSWORD,
                  fhir_user: str | None = None, patient: str | None = None) -> User:
    user = User(username, hash_password(password), role, fhir_user=fhir_user, patient=patient)
    with_store(settings, lambda store: store.put_user(user))
    return user


# --- PKCE and assertions ---------------------------------------------------------------------------------
def pkce_pair() -> tuple[str, str]:
    """(code_verifier, S256 code_challenge)."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def client_assertion(client_id: str, token_url: str, key: BackendKey, *, exp_in: int = 240,
                     jti: str | None = None, alg: str | None = None, kid: str | None = None,
                     extra_header: dict[str, Any] | None = None) -> str:
    """A signed private_key_jwt assertion (override alg/kid/exp to build bad ones)."""
    now = int(time.time())
    header = {"alg": alg or key.alg, "kid": kid or key.kid, "typ": "JWT", **(extra_header or {})}
    claims = {"iss": client_id, "sub": client_id, "aud": token_url, "exp": now + exp_in, "iat": now,
              "jti": jti or uuid.uuid4().hex}
    return jwt.encode(header, claims, key.key, algorithms=[header["alg"]])


def backend_token(server_url: str, client_id: str, key: BackendKey, scope: str) -> dict[str, Any]:
    """A SMART Backend Services token response (raises on a non-200)."""
    token_url = f"{server_url}/auth/token"
    response = httpx.post(token_url, data={
        "grant_type": "client_credentials", "scope": scope, "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": client_assertion(client_id, token_url, key)}, timeout=30)
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


# --- the browser half of the code flow, over plain HTTP ----------------------------------------------------
@dataclass
class Form:
    action: str
    method: str
    fields: list[tuple[str, str, str, bool]] = field(default_factory=list)  # name, value, type, checked

    def values(self, **overrides: Any) -> list[tuple[str, str]]:
        """What a browser would submit: hidden/text fields, ticked boxes; `overrides` replace by name
        (a list value for repeated names such as `scope`)."""
        out = []
        for name, value, kind, checked in self.fields:
            if not name or name in overrides or kind == "submit":
                continue
            if kind in ("checkbox", "radio") and not checked:
                continue
            out.append((name, value))
        for name, value in overrides.items():
            if value is None:
                continue
            out += [(name, v) for v in value] if isinstance(value, list) else [(name, str(value))]
        return out


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append(Form(a.get("action", ""), a.get("method", "get").lower()))
        elif tag in ("input", "button") and self.forms:
            checked = "checked" in a
            kind = a.get("type", "text" if tag == "input" else "submit")
            self.forms[-1].fields.append((a.get("name", ""), a.get("value", ""), kind, checked))


def forms(html: str) -> list[Form]:
    parser = _FormParser()
    parser.feed(html)
    return parser.forms


def form_with(html: str, action: str) -> Form:
    for f in forms(html):
        if f.action.startswith(action):
            return f
    raise AssertionError(f"no form posting to {action} in page:\n{html[:2000]}")


@dataclass
class Browser:
    """A cookie-keeping HTTP client that follows the server's own redirects but stops at the app's."""

    server_url: str
    http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=self.server_url, timeout=30, follow_redirects=False)

    def close(self) -> None:
        self.http.close()

    def go(self, response: httpx.Response) -> httpx.Response:
        """Follow redirects that stay on this server."""
        while response.status_code in (302, 303) and response.headers["location"].startswith(("/", self.server_url)):
            location = urljoin(str(response.url), response.headers["location"])
            response = self.http.get(location)
        return response

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.go(self.http.get(path, params=params))

    def submit(self, page: httpx.Response, action: str, **overrides: Any) -> httpx.Response:
        form = form_with(page.text, action)
        if form.method == "get":
            return self.go(self.http.get(form.action, params=form.values(**overrides)))
        return self.go(self.http.post(form.action, data=as_data(form.values(**overrides))))


def as_data(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    """Form pairs as httpx `data` (repeated names become lists)."""
    out: dict[str, list[str]] = {}
    for name, value in pairs:
        out.setdefault(name, []).append(value)
    return out


def authorize_params(server_url: str, client_id: str, scope: str, challenge: str | None, *,
                     redirect_uri: str = REDIRECT_URI, state: str = "st-123", launch: str | None = None,
                     aud: str | None = None, method: str | None = "S256", nonce: str | None = None) -> dict[str, str]:
    params = {"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri, "scope": scope,
              "state": state, "aud": aud if aud is not None else f"{server_url}/fhir"}
    if challenge is not None:
        params["code_challenge"] = challenge
    if method is not None:
        params["code_challenge_method"] = method
    if launch:
        params["launch"] = launch
    if nonce:
        params["nonce"] = nonce
    return params


def callback_params(response: httpx.Response) -> dict[str, str]:
    """The query of a redirect to the app (code/state or error)."""
    assert response.status_code in (302, 303), (response.status_code, response.text[:1000])
    query = parse_qs(urlsplit(response.headers["location"]).query)
    return {k: v[0] for k, v in query.items()}


def sign_in_and_consent(browser: Browser, params: dict[str, str], username: str, password: str = PASSWORD,
                        patient: str | None = None, untick: tuple[str, ...] = (),
                        decision: str = "allow") -> httpx.Response:
    """Walk authorize -> login -> (picker) -> consent; returns the final redirect to the app."""
    page = browser.get("/auth/authorize", **params)
    if "/auth/login" in page.text and 'name="password"' in page.text:
        page = browser.submit(page, "/auth/login", username=username, password=password)
    if 'action="/auth/picker"' in page.text:
        if patient is None:
            raise AssertionError("the server asked for a patient; pass patient=")
        page = browser.submit(page, "/auth/picker", patient=patient)
    if page.status_code in (302, 303):
        return page
    form = form_with(page.text, "/auth/consent")
    offered = [v for n, v, t, checked in form.fields if n == "scope" and checked]
    ticked = [s for s in offered if s not in untick]
    return browser.http.post("/auth/consent", data=as_data(form.values(scope=ticked, decision=decision)))


def exchange_code(server_url: str, client_id: str, code: str, verifier: str | None,
                  redirect_uri: str = REDIRECT_URI, secret: str | None = None) -> httpx.Response:
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
    if verifier is not None:
        data["code_verifier"] = verifier
    auth = (client_id, secret) if secret else None
    if not secret:
        data["client_id"] = client_id
    return httpx.post(f"{server_url}/auth/token", data=data, auth=auth, timeout=30)


def code_flow(server_url: str, client_id: str, username: str, scope: str, *, password: str = PASSWORD,
              patient: str | None = None, launch: str | None = None, secret: str | None = None,
              untick: tuple[str, ...] = (), nonce: str | None = None,
              redirect_uri: str = REDIRECT_URI) -> dict[str, Any]:
    """A full authorization-code flow with PKCE over HTTP: returns the token response (raises on error)."""
    verifier, challenge = pkce_pair()
    browser = Browser(server_url)
    try:
        params = authorize_params(server_url, client_id, scope, challenge, launch=launch, nonce=nonce,
                                  redirect_uri=redirect_uri)
        callback = callback_params(sign_in_and_consent(browser, params, username, password, patient, untick))
    finally:
        browser.close()
    if "code" not in callback:
        raise AssertionError(f"no code: {callback}")
    assert callback.get("state") == params["state"]
    response = exchange_code(server_url, client_id, callback["code"], verifier, redirect_uri, secret)
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def ehr_launch(server_url: str, username: str, client_id: str, patient: str, encounter: str | None = None,
               password: str = PASSWORD) -> tuple[Browser, str]:
    """Sign in to the EHR launcher and launch `client_id` for `patient`: (the signed-in browser, launch id).
    Continue with the same browser: sign_in_and_consent(browser, authorize_params(..., launch=id), ...)."""
    browser = Browser(server_url)
    page = browser.get("/auth/launcher")
    page = browser.submit(page, "/auth/login", username=username, password=password)
    response = browser.http.post("/auth/launcher", data=as_data(_launcher_values(page.text, patient, encounter, client_id)))
    assert response.status_code == 303, response.text[:1000]
    query = parse_qs(urlsplit(response.headers["location"]).query)
    assert query["iss"] == [f"{server_url}/fhir"]
    return browser, query["launch"][0]


def _launcher_values(html: str, patient: str, encounter: str | None, client_id: str) -> list[tuple[str, str]]:
    csrf = re.search(r'name="csrf" value="([^"]+)"', html)
    assert csrf, html[:2000]
    return [("csrf", csrf.group(1)), ("patient", patient), ("encounter", encounter or ""), ("client_id", client_id)]


# --- seeding data ------------------------------------------------------------------------------------------
def seed_api(running: RunningServer, client_id: str = "seed") -> httpx.Client:
    """An HTTP client on `<server>/fhir` carrying a `system/*.cruds` access token for a registered backend
    client (the record the token endpoint would write), for putting test data in place. Close it after use."""
    settings = running.settings
    base = f"{running.url}/fhir"
    register_backend_client(settings, client_id, "system/*.cruds")
    secret = secrets.token_urlsafe(32)
    grant = Grant(client_id, "system/*.cruds", base)
    with_store(settings, lambda store: store.save_token(secret, "access", grant, datetime.now(UTC), timedelta(hours=1)))
    return httpx.Client(base_url=base, timeout=30, headers={"Authorization": f"Bearer {secret}",
                                                            "Content-Type": "application/fhir+json"})
