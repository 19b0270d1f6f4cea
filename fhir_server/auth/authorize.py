"""The authorization endpoint and the pages behind it: sign in -> (patient picker) -> consent -> code.

Flow. `/auth/authorize` (GET, or POST for `authorize-post`) has authlib validate the request (client,
exact redirect URI, response type, scope, PKCE S256, `aud`). Errors the client can be told about go
back to its redirect URI; an unknown client or redirect URI gets an HTML page instead (never redirect
to an unvalidated URI). A valid request is stored server-side as a `tx` bound to the browser session,
and every later step (`/auth/continue`, `/auth/login`, `/auth/picker`, `/auth/consent`) revalidates it
with authlib, so nothing the browser posts can change what was validated.

Scopes offered on the consent page: the request narrowed by the client's registration and the user's
role (auth/negotiation.py); `launch` only with an EHR launch value, `launch/encounter` only when an EHR
launch supplied an encounter (there is no standalone encounter picker). A patient is established (EHR
context, the portal user's own record, or the picker) whenever `launch/patient` or a `patient/` scope is
offered; the user may untick any scope, and the code carries exactly what was left ticked.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import orjson
from authlib.oauth2.rfc6749 import OAuth2Error
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from fhir_server.auth import launch, negotiation, pages, roles, scopes, sessions
from fhir_server.auth.authlib_adapter import (
    AuthUser,
    SmartAuthorizationServer,
    SmartRequest,
    read_form,
    run_in_worker,
)
from fhir_server.auth.grants import fhir_user_url
from fhir_server.auth.login import LoginRefused, verify_login
from fhir_server.auth.urls import auth_url, fhir_base
from fhir_server.db.auth_store import User, digest

EXPIRED = ("This sign-in request has expired or was started in another browser. "
           "Go back to the app and start again.")
CSRF_REFUSED = "The form has expired or was not sent from this page. Reload the page and try again."


def _now() -> datetime:
    return datetime.now(UTC)


def smart_request(request: Request, params: list[tuple[str, str]], form: list[tuple[str, str]] | None = None,
                  method: str | None = None) -> SmartRequest:
    """A SmartRequest for authlib from the live request (raises InsecureTransportError for plain http
    that is not loopback)."""
    base = fhir_base(request)
    return SmartRequest(method or request.method, str(request.url), request.headers, params, form or [], base,
                        auth_url(base, "token"), _now())


async def _validate(server: SmartAuthorizationServer, req: SmartRequest) -> Any:
    return await run_in_worker(server.get_consent_grant, req, None)


def _oauth_error_page(server: SmartAuthorizationServer, req: SmartRequest | None, error: OAuth2Error) -> Response:
    if error.redirect_uri and req is not None:
        return server.handle_error_response(req, error)
    return pages.message("This app's request cannot be accepted",
                         f"{error.error}: {error.description or 'the request is not valid'}", 400)


async def authorize(server: SmartAuthorizationServer, request: Request) -> Response:
    form = await read_form(request)  # a bad form: routes.form_refused
    query = list(request.query_params.multi_items())
    params = form + query if request.method == "POST" else query
    req = None
    try:
        req = smart_request(request, params, method="GET")
        await _validate(server, req)
    except OAuth2Error as error:
        return _oauth_error_page(server, req, error)
    store = server.services.auth
    now = _now()
    session, new = await sessions.ensure(store, request, now)
    tx = await sessions.start_tx(store, session, params, now)
    response = RedirectResponse(f"/auth/continue?{urlencode({'tx': tx})}", status_code=303)
    if new:
        sessions.set_cookie(response, session, request.url.scheme == "https")
    return response


async def _app_name(server: SmartAuthorizationServer, data: dict[str, Any]) -> str | None:
    """The registered name of the app an authorization request comes from, to name it on the sign-in page."""
    client_id = next((v for k, v in data.get("params", []) if k == "client_id"), None)
    client = await server.services.auth.get_client(client_id) if client_id else None
    return client.name if client else None


def _login_page(tx: str, nxt: str, session: sessions.BrowserSession, error: str | None = None,
                status: int = 200, username: str = "", app: str | None = None) -> Response:
    context = pages.Html(f"<p>Sign in to continue to {pages.esc(app)}.</p>" if app else "")
    return pages.render("login.html", "Sign in", status, csrf=session.csrf, tx=tx, next=nxt, username=username,
                        error=pages.error_block(error), context=context)


@dataclass
class Step:
    """Where an authorization request stands for the signed-in user."""

    req: SmartRequest
    grant: Any
    user: User
    offered: list[str]
    patient: str | None
    encounter: str | None
    app: str


def _redirect_error(step_or_req: SmartRequest, error: str, description: str) -> Response:
    """An error sent to the (already validated) redirect URI, with the app's state."""
    data = step_or_req.payload.data
    params = {"error": error, "error_description": description}
    if data.get("state"):
        params["state"] = data["state"]
    return RedirectResponse(launch.add_query(data["redirect_uri"], params), status_code=302)


async def _step(server: SmartAuthorizationServer, request: Request, tx: str, data: dict[str, Any],
                user: User) -> Step | Response:
    params = [(k, v) for k, v in data["params"]]
    req = None
    try:
        req = smart_request(request, params, method="GET")
        grant = await _validate(server, req)
    except OAuth2Error as error:
        await sessions.finish_tx(server.services.auth, tx)
        return _oauth_error_page(server, req, error)
    client = req.client.client
    offered = negotiation.for_user(scopes.split(req.scope), user)
    launch_param = req.payload.data.get("launch")
    ctx = data.get("launch_ctx")
    if "launch" in offered and launch_param and ctx is None:
        ctx = await launch.redeem(server.services.auth, launch_param, user.username, client.client_id, _now())
        if ctx is None:
            await sessions.finish_tx(server.services.auth, tx)
            return _redirect_error(req, "invalid_request", "The launch value is unknown, expired, already used, "
                                                           "or was issued to another user or app")
        await sessions.update_tx(server.services.auth, tx, {"launch_ctx": ctx})
    if ctx is None:
        offered = [s for s in offered if s != "launch"]  # no EHR launch: no EHR context to hand over
    encounter = (ctx or {}).get("encounter")
    if not encounter:
        offered = [s for s in offered if s != "launch/encounter"]
    patient = (ctx or {}).get("patient") or data.get("patient")
    if patient is None and user.role == "patient" and user.patient:
        patient = user.patient
    if not offered:
        await sessions.finish_tx(server.services.auth, tx)
        return _redirect_error(req, "invalid_scope", "None of the requested scopes may be granted to this user")
    return Step(req, grant, user, offered, patient, encounter, client.name)


def _needs_patient(offered: list[str]) -> bool:
    return "launch/patient" in offered or any(
        (p := scopes.parse_resource_scope(s)) is not None and p.level == "patient" for s in offered)


async def _signed_in(server: SmartAuthorizationServer, request: Request, tx: str | None
                     ) -> tuple[sessions.BrowserSession | None, dict[str, Any] | None, User | None]:
    store = server.services.auth
    now = _now()
    session = await sessions.load(store, request, now)
    data = await sessions.load_tx(store, tx, session, now)
    user = None
    if session is not None and session.user is not None:
        user = await store.get_user(session.user)
        if user is not None and not user.active:
            user = None
    return session, data, user


async def continue_(server: SmartAuthorizationServer, request: Request) -> Response:
    tx = request.query_params.get("tx") or ""
    session, data, user = await _signed_in(server, request, tx)
    if session is None or data is None:
        return pages.message("Sign-in expired", EXPIRED, 400)
    if user is None:
        return _login_page(tx, "", session, app=await _app_name(server, data))
    step = await _step(server, request, tx, data, user)
    if not isinstance(step, Step):
        return step
    if _needs_patient(step.offered) and step.patient is None:
        if user.role not in roles.STAFF_ROLES:
            await sessions.finish_tx(server.services.auth, tx)
            return _redirect_error(step.req, "access_denied", "No patient record is linked to this user")
        q = (request.query_params.get("q") or "")[:100]
        found = await pages.find_patients(server.services, q, fhir_base(request), _now())
        results = pages.Html(
            '<form method="post" action="/auth/picker">'
            f'<input type="hidden" name="csrf" value="{pages.esc(session.csrf)}">'
            f'<input type="hidden" name="tx" value="{pages.esc(tx)}">'
            f'<fieldset><legend>Patients</legend>{pages.patient_choices(found)}</fieldset>'
            + ('<button type="submit">Continue with this patient</button>' if found else "") + "</form>")
        return pages.render("picker.html", "Choose a patient", app=step.app, q=q, search_action="/auth/continue",
                            search_hidden=pages.Html(f'<input type="hidden" name="tx" value="{pages.esc(tx)}">'),
                            results=results)
    patient_note = pages.Html(f" Patient: <strong>{pages.esc(await _patient_name(server, step.patient))}</strong>."
                              if step.patient and _needs_patient(step.offered) else "")
    return pages.render("consent.html", f"Allow {step.app}?", app=step.app, user=user.username, patient=patient_note,
                        csrf=session.csrf, tx=tx, choices=pages.scope_choices(step.offered))


async def _patient_name(server: SmartAuthorizationServer, patient: str) -> str:
    stored = await server.services.store.current("Patient", patient)
    if stored is None or stored.raw is None:
        return f"Patient/{patient}"
    return pages.patient_label(orjson.loads(stored.raw))


async def login_form(server: SmartAuthorizationServer, request: Request) -> Response:
    """GET /auth/login: the sign-in page for the EHR launcher (`next=launcher`)."""
    store = server.services.auth
    session, new = await sessions.ensure(store, request, _now())
    response = _login_page("", "launcher", session)
    if new:
        sessions.set_cookie(response, session, request.url.scheme == "https")
    return response


async def login_submit(server: SmartAuthorizationServer, request: Request) -> Response:
    form = dict(await read_form(request))  # a bad form: routes.form_refused
    store = server.services.auth
    now = _now()
    tx = form.get("tx") or ""
    nxt = "launcher" if form.get("next") == "launcher" else ""
    session = await sessions.load(store, request, now)
    if session is None or not session.csrf_ok(form.get("csrf")):
        return pages.message("Request refused", CSRF_REFUSED, 403)
    data = await sessions.load_tx(store, tx, session, now) if tx else None
    if tx and data is None:
        return pages.message("Sign-in expired", EXPIRED, 400)
    if not tx and not nxt:
        return pages.message("Request refused", "Nothing to sign in to: start from an app or the launcher.", 400)
    username = (form.get("username") or "")[:256]
    address = request.client.host if request.client else "unknown"
    try:
        user = await verify_login(store, server.services.settings, username, form.get("password") or "", address, now)
    except LoginRefused as refused:
        return _login_page(tx, nxt, session, refused.message, refused.status, username,
                           await _app_name(server, data) if data else None)
    fresh = await sessions.sign_in(store, session, user.username, now)
    if tx:
        await sessions.update_tx(store, tx, {"sid": digest(fresh.sid)})
        target = f"/auth/continue?{urlencode({'tx': tx})}"
    else:
        target = "/auth/launcher"
    response = RedirectResponse(target, status_code=303)
    sessions.set_cookie(response, fresh, request.url.scheme == "https")
    return response


async def picker_submit(server: SmartAuthorizationServer, request: Request) -> Response:
    form = dict(await read_form(request))  # a bad form: routes.form_refused
    tx = form.get("tx") or ""
    session, data, user = await _signed_in(server, request, tx)
    if session is None or not session.csrf_ok(form.get("csrf")):
        return pages.message("Request refused", CSRF_REFUSED, 403)
    if data is None or user is None:
        return pages.message("Sign-in expired", EXPIRED, 400)
    if user.role not in roles.STAFF_ROLES:
        return pages.message("Not available", "Only staff can choose a patient.", 403)
    patient = form.get("patient") or ""
    if not await pages.patient_exists(server.services, patient):
        return pages.message("No such patient", "Choose a patient from the list.", 400)
    await sessions.update_tx(server.services.auth, tx, {"patient": patient})
    return RedirectResponse(f"/auth/continue?{urlencode({'tx': tx})}", status_code=303)


async def consent_submit(server: SmartAuthorizationServer, request: Request) -> Response:
    pairs = await read_form(request)  # a bad form: routes.form_refused
    form = dict(pairs)
    tx = form.get("tx") or ""
    session, data, user = await _signed_in(server, request, tx)
    if session is None or not session.csrf_ok(form.get("csrf")):
        return pages.message("Request refused", CSRF_REFUSED, 403)
    if data is None or user is None:
        return pages.message("Sign-in expired", EXPIRED, 400)
    step = await _step(server, request, tx, data, user)
    if not isinstance(step, Step):
        return step
    if _needs_patient(step.offered) and step.patient is None:
        return RedirectResponse(f"/auth/continue?{urlencode({'tx': tx})}", status_code=303)
    if not await sessions.finish_tx(server.services.auth, tx):
        return pages.message("Already answered", "This request was already answered.", 400)
    ticked = {v for k, v in pairs if k == "scope"}
    approved = [s for s in step.offered if s in ticked]
    auth_user = AuthUser(user, fhir_user_url(step.req.fhir_base, user))
    if form.get("decision") != "allow" or not approved:
        return await run_in_worker(server.create_authorization_response, step.req, None, step.grant)
    with_patient = step.patient is not None and ("launch" in approved or _needs_patient(approved))
    with_encounter = step.encounter is not None and ("launch" in approved or "launch/encounter" in approved)
    step.req.smart_approved = {
        "scope": " ".join(approved),
        "patient": step.patient if with_patient else None,
        "encounter": step.encounter if with_encounter else None,
        "fhir_context": [{"reference": f"Encounter/{step.encounter}"}] if with_encounter else [],
        "need_patient_banner": with_patient,
        "auth_time": session.auth_time,
    }
    return await run_in_worker(server.create_authorization_response, step.req, auth_user, step.grant)
