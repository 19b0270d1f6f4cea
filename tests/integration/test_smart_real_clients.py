"""Real SMART clients against the running server: the PyPI `fhirclient` package (SMART's Python client)
completes a standalone launch and reads the patient; authlib's OAuth 2.0 client does SMART Backend
Services (private_key_jwt, RS384 and ES384) and runs a system-level search. The browser half of the
standalone launch (sign-in, patient picker, consent) is walked over HTTP through the server's real forms,
CSRF token included (tests/smart_helpers.py). The npm client's EHR launch in Chromium is in
tests/browser/test_smart_js_client.py.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from fhirclient import client as fhir_client
from fhirclient.models.patient import Patient
from fhirclient.server import FHIRNotFoundException, FHIRUnauthorizedException

from fhir_server.config import Settings
from tests.conftest import RunningServer, database_name, start_server
from tests.smart_helpers import (
    REDIRECT_URI,
    Browser,
    callback_params,
    register_backend_client,
    register_public_client,
    register_user,
    seed_api,
    sign_in_and_consent,
)

APP_SCOPE = "launch/patient openid fhirUser patient/*.rs"
OFFLINE_SCOPE = "launch/patient offline_access patient/*.rs"


@dataclass
class Site:
    server: RunningServer
    base: str
    patients: dict[str, str]  # family name -> id
    observations: dict[str, str]  # family name -> id of that patient's Observation


@pytest.fixture(scope="module")
def site(mongodb_uri: str) -> Iterator[Site]:
    settings = Settings(mongodb_uri=mongodb_uri, database=database_name(), auth="on",
                        login_attempts_per_minute=10_000)
    running = start_server(settings)
    try:
        patients: dict[str, str] = {}
        observations: dict[str, str] = {}
        with seed_api(running) as api:
            for given, family in (("Amara", "Okafor"), ("Bram", "Visser")):
                r = api.post("/Patient", json={"resourceType": "Patient", "birthDate": "1980-04-02",
                                               "name": [{"family": family, "given": [given]}]})
                assert r.status_code == 201, r.text
                patients[family] = r.json()["id"]
                r = api.post("/Observation", json={
                    "resourceType": "Observation", "status": "final",
                    "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
                    "subject": {"reference": f"Patient/{patients[family]}"}, "valueQuantity": {"value": 72}})
                assert r.status_code == 201, r.text
                observations[family] = r.json()["id"]
        register_user(settings, "dr-python", "doctor", fhir_user="Practitioner/p-python")
        register_public_client(settings, "py-app", APP_SCOPE)
        register_public_client(settings, "py-offline", OFFLINE_SCOPE)
        yield Site(running, f"{running.url}/fhir", patients, observations)
    finally:
        running.stop()


# --- PyPI fhirclient: standalone launch -------------------------------------------------------------------
def _sign_in(site: Site, authorize_url: str, patient: str) -> str:
    """The user's part, through the server's real pages: returns the redirect URL back to the app."""
    parts = urlsplit(authorize_url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{site.server.url}/auth/authorize"
    browser = Browser(site.server.url)
    try:
        redirect = sign_in_and_consent(browser, dict(parse_qsl(parts.query)), "dr-python", patient=patient)
    finally:
        browser.close()
    callback: str = redirect.headers["location"]
    assert callback.startswith(REDIRECT_URI + "?"), callback_params(redirect)
    return callback


def test_pypi_fhirclient_standalone_launch_reads_the_picked_patient(site: Site) -> None:
    """fhirclient reads the CapabilityStatement's oauth-uris extension, builds the authorize URL (its
    own state, aud and PKCE S256), exchanges the code in handle_callback and reads the patient."""
    saved: list[dict[str, Any]] = []
    smart = fhir_client.FHIRClient(settings={"app_id": "py-app", "api_base": site.base, "redirect_uri": REDIRECT_URI,
                                             "scope": APP_SCOPE}, save_func=saved.append)
    authorize_url = smart.authorize_url
    params = dict(parse_qsl(urlsplit(authorize_url).query))
    assert params["aud"] == site.base and params["code_challenge_method"] == "S256"

    picked = site.patients["Okafor"]
    smart.handle_callback(_sign_in(site, authorize_url, picked))
    assert smart.ready
    assert smart.patient_id == picked
    context = smart.launch_context
    assert context["patient"] == picked and context["need_patient_banner"] is True
    # fhirclient puts `launch/patient` in front of the configured scope again; the grant lists it once.
    assert params["scope"] == f"launch/patient {APP_SCOPE}"
    assert context["scope"] == APP_SCOPE
    assert context["token_type"] == "Bearer" and "id_token" in context

    patient = smart.patient
    assert patient is not None and patient.id == picked
    assert smart.human_name(patient.name[0]) == "Amara Okafor"
    assert Patient.read(picked, smart.server).birthDate.isostring == "1980-04-02"

    # The token is confined to the patient's compartment: the other patient is not there for it.
    with pytest.raises(FHIRNotFoundException) as refused:
        Patient.read(site.patients["Visser"], smart.server)
    assert refused.value.response.status_code == 404
    assert saved and saved[-1]["patient_id"] == picked  # the client's state was saved after the launch


def test_pypi_fhirclient_resumes_from_saved_state_and_refreshes(site: Site) -> None:
    """A web app keeps fhirclient's state between requests: a client rebuilt from the saved state reads
    the patient, and `reauthorize` uses the refresh token (offline_access; a public client refreshes with
    its client_id only) and gets a rotated one."""
    saved: list[dict[str, Any]] = []
    settings = {"app_id": "py-offline", "api_base": site.base, "redirect_uri": REDIRECT_URI, "scope": OFFLINE_SCOPE}
    first = fhir_client.FHIRClient(settings=settings, save_func=saved.append)
    picked = site.patients["Visser"]
    first.handle_callback(_sign_in(site, first.authorize_url, picked))
    refresh_token = first.server.auth.refresh_token
    assert refresh_token and first.launch_context["scope"] == OFFLINE_SCOPE

    resumed = fhir_client.FHIRClient(state=saved[-1], save_func=saved.append)
    assert resumed.ready and resumed.patient_id == picked
    assert resumed.patient is not None and resumed.patient.id == picked

    old_access = resumed.server.auth.access_token
    assert resumed.reauthorize()
    assert resumed.launch_context["patient"] == picked
    assert resumed.server.auth.access_token != old_access
    assert resumed.server.auth.refresh_token not in (None, refresh_token)  # rotated
    assert Patient.read(picked, resumed.server).id == picked
    # Presenting the retired refresh token again (a stolen copy) is refused and revokes the whole chain,
    # so the client's current token stops working too.
    reuse = httpx.post(f"{site.server.url}/auth/token", timeout=30, data={
        "grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": "py-offline"})
    assert reuse.status_code == 400 and reuse.json()["error"] == "invalid_grant"
    with pytest.raises(FHIRUnauthorizedException):
        Patient.read(picked, resumed.server)


# --- authlib: SMART Backend Services ----------------------------------------------------------------------
def _bundle_ids(bundle: dict[str, Any]) -> set[str]:
    return {f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in bundle.get("entry", [])
            if e.get("search", {}).get("mode", "match") == "match"}


@pytest.mark.parametrize("alg", ["RS384", "ES384"])
def test_authlib_backend_services_client_runs_a_system_search(site: Site, alg: str) -> None:
    """authlib's OAuth 2.0 client with its rfc7523 PrivateKeyJWT client authentication fetches a
    client_credentials token from the server's token endpoint and searches with it.

    The client is authlib's `requests` integration (OAuth2Session), not `httpx_client.OAuth2Client`: in
    authlib 1.9.9 importing the httpx integration without the `httpx2` package raises
    AuthlibDeprecationWarning ("The httpx module is deprecated; please use httpx2 instead"), an error
    under this suite's `filterwarnings = error`; `requests` is already installed with `fhirclient`.
    Both integrations share the same OAuth2Client core and PrivateKeyJWT.

    Two things are passed to PrivateKeyJWT explicitly rather than left to authlib's defaults: `alg` (its
    default is RS256, which SMART does not allow) and the `exp` claim, because authlib signs assertions
    that live an hour (`expires_in=3600`, not settable through PrivateKeyJWT) while SMART Backend Services
    requires `exp` at most five minutes ahead. `kid` goes in the header as SMART requires. A fresh
    PrivateKeyJWT is registered for each token request because authlib stores the generated `jti` in the
    claims dict it was given, so reusing one would replay the `jti` (which the server refuses)."""
    client_id = f"backend-{alg.lower()}"
    key = register_backend_client(site.server.settings, client_id, "system/*.rs", alg=alg)
    token_url = f"{site.server.url}/auth/token"
    with OAuth2Session(client_id, client_secret=key.key, token_endpoint_auth_method="private_key_jwt") as oauth:
        def fetch(scope: str) -> dict[str, Any]:
            oauth.register_client_auth_method(PrivateKeyJWT(
                token_url, claims={"exp": int(time.time()) + 240}, headers={"kid": key.kid}, alg=alg))
            token: dict[str, Any] = oauth.fetch_token(token_url, grant_type="client_credentials", scope=scope,
                                                          timeout=30)
            return token

        token = fetch("system/Patient.rs system/Observation.rs")
        assert token["token_type"] == "Bearer"
        assert token["scope"].split() == ["system/Patient.rs", "system/Observation.rs"]
        assert 0 < token["expires_in"] <= 300 and "refresh_token" not in token

        # The token rides on the same authlib client (it adds the Bearer header).
        headers = {"Accept": "application/fhir+json"}
        everything = oauth.get(f"{site.base}", params={"_type": "Patient,Observation"}, headers=headers,
                                 timeout=30)
        assert everything.status_code == 200, everything.text
        expected = {f"Patient/{i}" for i in site.patients.values()} | {
            f"Observation/{i}" for i in site.observations.values()}
        assert _bundle_ids(everything.json()) == expected

        by_type = oauth.get(f"{site.base}/Observation", params={"subject": f"Patient/{site.patients['Visser']}"},
                            headers=headers, timeout=30)
        assert by_type.status_code == 200, by_type.text
        assert _bundle_ids(by_type.json()) == {f"Observation/{site.observations['Visser']}"}

        # Scopes are a ceiling: outside them there is nothing, and the server says so.
        outside = oauth.get(f"{site.base}/Encounter", headers=headers, timeout=30)
        assert outside.status_code == 403, outside.text

        # A second token from the same client (a new assertion, new jti) narrows further.
        narrow = fetch("system/Patient.rs")
        assert narrow["scope"] == "system/Patient.rs"
        narrow_headers = {**headers, "Authorization": f"Bearer {narrow['access_token']}"}
        mixed = httpx.get(site.base, params={"_type": "Patient,Observation"}, headers=narrow_headers, timeout=30)
        assert mixed.status_code == 403, mixed.text
        assert "Observation" in mixed.json()["issue"][0]["diagnostics"]
        patients = httpx.get(site.base, params={"_type": "Patient"}, headers=narrow_headers, timeout=30)
        assert patients.status_code == 200, patients.text
        assert _bundle_ids(patients.json()) == {f"Patient/{i}" for i in site.patients.values()}
