"""EHR launch: the launcher page, and the opaque single-use `launch` values it issues.

Why the server issues the value: SMART's EHR launch hands the app an opaque `launch` id that the
authorization server later swaps for context. Here a signed-in staff user picks a patient (and optionally
an encounter) and a registered app with a `launch_uri`; the server stores {user, client, patient,
encounter} under the id's hash for LAUNCH_SECONDS and redirects the browser to
`launch_uri?iss=<FHIR base>&launch=<id>`. The id works once, only for that app and that user.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import orjson
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from fhir_server.auth import pages, roles, sessions
from fhir_server.auth.authlib_adapter import read_form
from fhir_server.auth.urls import fhir_base
from fhir_server.db.auth_store import LAUNCHES, AuthStore, Client
from fhir_server.services import Services

LAUNCH_SECONDS = 300


def add_query(uri: str, params: dict[str, str]) -> str:
    parts = urlsplit(uri)
    query = (parts.query + "&" if parts.query else "") + urlencode(params)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


async def issue(store: AuthStore, user: str, client_id: str, patient: str, encounter: str | None,
                now: datetime) -> str:
    launch = secrets.token_urlsafe(24)
    await store.put_once(LAUNCHES, launch, {"user": user, "client_id": client_id, "patient": patient,
                                            "encounter": encounter}, now + timedelta(seconds=LAUNCH_SECONDS))
    return launch


async def redeem(store: AuthStore, launch: str, user: str, client_id: str, now: datetime) -> dict[str, Any] | None:
    """The launch context, consumed; None when unknown, expired, used, or issued to another user or app."""
    if not launch or len(launch) > 128:
        return None
    data = await store.take_once(LAUNCHES, launch, now)
    if data is None or data.get("user") != user or data.get("client_id") != client_id:
        return None
    return data


def _launchable(clients: list[Client]) -> list[Client]:
    return [c for c in clients if c.active and c.launch_uri and c.redirect_uris]


async def _staff(services: Services, request: Request, now: datetime) -> tuple[sessions.BrowserSession | None, Any]:
    session = await sessions.load(services.auth, request, now)
    if session is None or session.user is None:
        return session, None
    user = await services.auth.get_user(session.user)
    if user is None or not user.active:
        return session, None
    return session, user


async def launcher_page(services: Services, request: Request, now: datetime, error: str | None = None,
                        status: int = 200) -> Response:
    session, user = await _staff(services, request, now)
    if user is None:
        return RedirectResponse("/auth/login?next=launcher", status_code=303)
    if user.role not in roles.STAFF_ROLES:
        return pages.message("Not available", "Only staff can launch apps for a patient.", 403)
    assert session is not None
    q = (request.query_params.get("q") or "")[:100]
    patients = await pages.find_patients(services, q, fhir_base(request), now)
    apps = _launchable(await services.auth.list_clients())
    options = "".join(f'<option value="{pages.esc(c.client_id)}">{pages.esc(c.name)}</option>' for c in apps)
    if not apps:
        options = '<option value="">No app with a launch URL is registered</option>'
    return pages.render("launcher.html", "Launch an app", status, user=user.username, q=q, csrf=session.csrf,
                        patients=pages.patient_choices(patients), apps=pages.Html(options),
                        error=pages.error_block(error))


async def launch_submit(services: Services, request: Request, now: datetime) -> Response:
    form = dict(await read_form(request))  # a bad form: routes.form_refused
    session, user = await _staff(services, request, now)
    if session is None or not session.csrf_ok(form.get("csrf")):
        return pages.message("Request refused", "The form has expired or was not sent from this page. "
                             "Reload the page and try again.", 403)
    if user is None or user.role not in roles.STAFF_ROLES:
        return pages.message("Not available", "Only signed-in staff can launch apps.", 403)
    patient = form.get("patient") or ""
    encounter = (form.get("encounter") or "").strip() or None
    client = await services.auth.get_client(form.get("client_id") or "") if form.get("client_id") else None
    if client is None or client not in _launchable([client]):
        return await launcher_page(services, request, now, "Choose a registered app.", 400)
    if not await pages.patient_exists(services, patient):
        return await launcher_page(services, request, now, "Choose a patient.", 400)
    if encounter is not None:
        stored = await services.store.current("Encounter", encounter) if len(encounter) <= 64 else None
        if stored is None or stored.raw is None:
            return await launcher_page(services, request, now, "No encounter has that id.", 400)
        subject = str((orjson.loads(stored.raw).get("subject") or {}).get("reference") or "")
        if subject != f"Patient/{patient}" and not subject.endswith(f"/Patient/{patient}"):
            return await launcher_page(services, request, now, "That encounter is not the chosen patient's.", 400)
    launch = await issue(services.auth, user.username, client.client_id, patient, encounter, now)
    assert client.launch_uri is not None
    target = add_query(client.launch_uri, {"iss": fhir_base(request), "launch": launch})
    return RedirectResponse(target, status_code=303)
