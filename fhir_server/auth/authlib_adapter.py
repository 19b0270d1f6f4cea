"""authlib's OAuth 2 server on FastAPI: a request snapshot, the server subclass, and the thread bridge.

Why this shape (research note smart-authlib.md P1-P4): authlib's server is synchronous and never awaits
a body, while the store is async PyMongo. So an async route reads and bounds the body first, freezes the
request into a `SmartRequest` (P2), and runs authlib in a worker thread (`run_in_worker`); authlib's
storage callbacks come back to the event loop with `anyio.from_thread.run` (`call`), so the loop never
blocks on the database. Headers stay Starlette's case-insensitive `Headers` (P4: a plain dict silently
breaks Basic and Bearer parsing). `payload` is set, as authlib >= 1.6 requires (P3).
"""

from __future__ import annotations

import functools
import logging
import secrets
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import anyio
import anyio.from_thread
import anyio.to_thread
import orjson
from authlib.oauth2.rfc6749 import AuthorizationServer, ClientMixin, OAuth2Request
from authlib.oauth2.rfc6749.requests import OAuth2Payload
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response

from fhir_server.auth import negotiation, passwords
from fhir_server.auth.keys import SigningKeys
from fhir_server.db.auth_store import Client, Grant, User
from fhir_server.services import Services

log = logging.getLogger("fhir_server.auth")
T = TypeVar("T")

MAX_FORM_BYTES = 64 * 1024  # token/authorize/introspect bodies are small; bound what a client can send
MAX_FIELDS = 64
FORM_TYPE = "application/x-www-form-urlencoded"


class FormError(Exception):
    """The body is not a bounded urlencoded form (status 400, 413 or 415)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


async def read_form(request: Request, limit: int = MAX_FORM_BYTES) -> list[tuple[str, str]]:
    """The urlencoded body as pairs, refused when too large, not a form, or with too many fields.

    Parsed here (not with Starlette's `request.form()`) so the size bound holds while reading and the
    server needs no multipart parser."""
    if request.method != "POST":
        return []
    content_type = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise FormError(413, f"The request body is larger than {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise FormError(413, f"The request body is larger than {limit} bytes")
    if not body:
        return []
    if content_type != FORM_TYPE:
        raise FormError(415, f"The body must be {FORM_TYPE}")
    try:
        text = body.decode("utf-8")
        return parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FIELDS, strict_parsing=False)
    except (UnicodeDecodeError, ValueError) as exc:
        raise FormError(400, "The form body is not valid UTF-8 urlencoded data") from exc


class SmartPayload(OAuth2Payload):
    """Query and form merged, first value wins (like Flask's `request.values`, so authorize-post works);
    `datalist` keeps every value so repeated parameters can be refused."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._datalist: defaultdict[str, list[str]] = defaultdict(list)
        for key, value in pairs:
            self._datalist[key].append(value)
        self._data = {k: v[0] for k, v in self._datalist.items()}

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return self._datalist


class SmartRequest(OAuth2Request):
    """An immutable view of one HTTP request, plus the SMART facts the grants need (`fhir_base`, the
    token URL, the clock) and slots the grants fill in (`smart_*`)."""

    def __init__(self, method: str, uri: str, headers: Headers, query: list[tuple[str, str]],
                 form: list[tuple[str, str]], fhir_base: str, token_url: str, now: datetime) -> None:
        super().__init__(method, uri, headers=headers)  # raises InsecureTransportError for plain http
        self._args = {k: v for k, v in reversed(query)}
        self._form = {k: v for k, v in reversed(form)}
        self.payload = SmartPayload(form + query if method == "POST" else query)
        self.fhir_base = fhir_base
        self.token_url = token_url
        self.now = now
        self.smart_grant: Grant | None = None  # the context the next token stands for
        self.smart_family: str | None = None  # refresh chain the next tokens join
        self.smart_refresh_expires: datetime | None = None  # online_access: keep the chain's end
        self.smart_approved: dict[str, Any] | None = None  # what the user approved on the consent page

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form


class ClientModel(ClientMixin):
    """A registered `Client` as authlib sees it. The kind decides the rest:
    public -> auth method `none` and PKCE; confidential -> client_secret_basic/post (argon2-hashed
    secret); backend -> private_key_jwt, client_credentials (and the code flow if it has redirect URIs)."""

    AUTH_METHODS = {"public": ("none",), "confidential": ("client_secret_basic", "client_secret_post"),
                    "backend": ("private_key_jwt",)}

    def __init__(self, client: Client, server: SmartAuthorizationServer) -> None:
        self.client = client
        self.server = server

    @property
    def client_id(self) -> str:
        return self.client.client_id

    @property
    def kind(self) -> str:
        return self.client.kind

    def get_client_id(self) -> str:
        return self.client.client_id

    def get_default_redirect_uri(self) -> str | None:
        uris = self.client.redirect_uris
        return uris[0] if len(uris) == 1 else None

    def get_allowed_scope(self, scope: str | None) -> str | None:
        services = self.server.services
        granted = negotiation.for_client(scope, self.client, services.registry, services.search_registry)
        return " ".join(granted) if granted else None

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.client.redirect_uris  # exact match, no prefixes or wildcards

    def check_client_secret(self, client_secret: str) -> bool:
        if not self.client.secret_hash or len(client_secret) > passwords.MAX_LENGTH:
            return False
        return passwords.verify_password(self.client.secret_hash, client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return self.client.active and method in self.AUTH_METHODS.get(self.client.kind, ())

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and bool(self.client.redirect_uris)

    def check_grant_type(self, grant_type: str) -> bool:
        if self.client.kind == "backend":
            return grant_type == "client_credentials" or (
                grant_type == "authorization_code" and bool(self.client.redirect_uris))
        return grant_type in ("authorization_code", "refresh_token")


@dataclass(frozen=True)
class AuthUser:
    """The signed-in user as the grants and the id_token see them; `fhir_user_url` is absolute."""

    user: User
    fhir_user_url: str | None

    def get_user_id(self) -> str:
        return self.user.username


class SmartAuthorizationServer(AuthorizationServer):
    """authlib's AuthorizationServer bound to our store. Every method here runs in a worker thread."""

    def __init__(self, services: Services, keys: SigningKeys) -> None:
        super().__init__(scopes_supported=None)  # P8: a verbatim list would reject every granular scope
        self.services = services
        self.keys = keys
        self.register_token_generator("default", self._generate)

    # --- the bridge back to the event loop ---------------------------------------------------------
    @staticmethod
    def call(fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run an async store call from authlib's worker thread on the event loop, and wait for it."""
        return anyio.from_thread.run(fn, *args)

    # --- authlib hooks -----------------------------------------------------------------------------
    def query_client(self, client_id: str) -> ClientModel | None:
        if not isinstance(client_id, str) or not 0 < len(client_id) <= 256:
            return None
        client = self.call(self.services.auth.get_client, client_id)
        if client is None or not client.active:
            return None
        return ClientModel(client, self)

    def _generate(self, grant_type: str, client: ClientModel, user: Any = None, scope: str | None = None,
                  expires_in: int | None = None, include_refresh_token: bool = True) -> dict[str, Any]:
        settings = self.services.settings
        if expires_in is None:
            expires_in = (settings.backend_token_seconds if grant_type == "client_credentials"
                          else settings.access_token_seconds)
        token: dict[str, Any] = {"access_token": secrets.token_urlsafe(32), "token_type": "Bearer",
                                 "expires_in": expires_in, "scope": scope or ""}
        if include_refresh_token:
            token["refresh_token"] = secrets.token_urlsafe(32)
        return token

    def save_token(self, token: dict[str, Any], request: SmartRequest) -> None:
        """Persist the pair under the grant the grant class put on the request. The refresh token is
        stored first so the access token joins its family: revoking either ends the chain."""
        grant = request.smart_grant
        if grant is None:  # pragma: no cover - every grant sets it
            raise RuntimeError("no grant context for the token")
        store = self.services.auth
        family = request.smart_family
        refresh = token.get("refresh_token")
        if refresh:
            if request.smart_refresh_expires is not None:
                lifetime = max(request.smart_refresh_expires - request.now, timedelta(seconds=1))
            else:
                lifetime = timedelta(seconds=self.services.settings.refresh_token_seconds)
            record = self.call(store.save_token, refresh, "refresh", grant, request.now, lifetime, family)
            family = record.family
        lifetime = timedelta(seconds=int(token["expires_in"]))
        self.call(store.save_token, token["access_token"], "access", grant, request.now, lifetime, family)

    def create_oauth2_request(self, request: Any) -> SmartRequest:
        if isinstance(request, SmartRequest):
            return request
        raise TypeError("build a SmartRequest in the route (the body must be read before authlib runs)")

    def create_json_request(self, request: Any) -> Any:  # pragma: no cover - no dynamic registration
        raise NotImplementedError("no JSON endpoints are registered (dynamic client registration is not offered)")

    def handle_response(self, status: int, body: Any, headers: Any) -> Response:
        header_map = dict(headers or [])
        if isinstance(body, dict):
            header_map.pop("Content-Type", None)
            return Response(orjson.dumps(body), status_code=status, headers=header_map,
                            media_type="application/json")
        return Response(body or b"", status_code=status, headers=header_map)

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        log.debug("authlib signal %s", name)


async def run_in_worker(fn: Callable[..., T], *args: Any) -> T:
    """Run a synchronous authlib entry point off the event loop (its callbacks use `call`)."""
    return await anyio.to_thread.run_sync(functools.partial(fn, *args))
