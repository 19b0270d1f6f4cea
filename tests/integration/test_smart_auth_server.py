"""The SMART authorization server over real HTTP: discovery, the code flow with PKCE, refresh, Backend
Services, introspection, revocation, id_tokens, EHR launch, and the attacks each of them must refuse.

One server and database for the module (argon2 hashing and server start-up are the slow parts); each
test registers what it needs under its own names.
"""

from __future__ import annotations

import base64
import http.server
import json
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, OctKey

from fhir_server.config import Settings
from fhir_server.db.auth_store import Grant
from tests.conftest import RunningServer, database_name, start_server
from tests.smart_helpers import (
    ASSERTION_TYPE,
    PASSWORD,
    REDIRECT_URI,
    Browser,
    authorize_params,
    backend_token,
    callback_params,
    client_assertion,
    code_flow,
    ehr_launch,
    exchange_code,
    form_with,
    new_backend_key,
    pkce_pair,
    register_backend_client,
    register_confidential_client,
    register_public_client,
    register_user,
    sign_in_and_consent,
    with_store,
)

APP_SCOPE = ("launch launch/patient launch/encounter openid fhirUser offline_access online_access "
             "patient/*.rs user/*.rs patient/Observation.cruds")

APP_ORIGIN = "https://app.example.test"


@dataclass
class World:
    server: RunningServer
    settings: Settings
    url: str
    base: str
    patient: str
    other_patient: str
    encounter: str

    @property
    def token_url(self) -> str:
        return f"{self.url}/auth/token"

    def introspect(self, token: str, auth: str | None = None) -> httpx.Response:
        return httpx.post(f"{self.url}/auth/introspect", data={"token": token},
                          headers={"Authorization": f"Bearer {auth or token}"}, timeout=30)


def _mint(settings: Settings, base: str, scope: str) -> str:
    secret = secrets.token_urlsafe(32)
    grant = Grant(client_id="seed", scope=scope, aud=base)
    with_store(settings, lambda store: store.save_token(secret, "access", grant, datetime.now(UTC), timedelta(hours=1)))
    return secret


@pytest.fixture(scope="module")
def world(mongodb_uri: str) -> Iterator[World]:
    settings = Settings(mongodb_uri=mongodb_uri, database=database_name(), auth="on",
                        login_attempts_per_minute=10_000)
    running = start_server(settings)
    base = f"{running.url}/fhir"
    try:
        register_backend_client(settings, "seed", "system/*.cruds")
        admin = {"Authorization": f"Bearer {_mint(settings, base, 'system/*.cruds')}",
                 "Content-Type": "application/fhir+json"}
        ids = []
        for family in ("Ndlovu", "Botha"):
            r = httpx.post(f"{base}/Patient", headers=admin, timeout=30,
                           json={"resourceType": "Patient", "name": [{"family": family, "given": ["Thandi"]}],
                                 "birthDate": "1980-02-03", "gender": "female"})
            assert r.status_code == 201, r.text
            ids.append(r.json()["id"])
        r = httpx.post(f"{base}/Encounter", headers=admin, timeout=30,
                       json={"resourceType": "Encounter", "status": "finished",
                             "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                             "subject": {"reference": f"Patient/{ids[0]}"}})
        assert r.status_code == 201, r.text
        register_user(settings, "dr-mokoena", "doctor", fhir_user="Practitioner/p-1")
        register_user(settings, "portal-thandi", "patient", fhir_user=f"Patient/{ids[0]}", patient=ids[0])
        register_public_client(settings, "app", APP_SCOPE, launch_uri="https://app.example.test/launch",
                               allowed_origins=(APP_ORIGIN,))
        yield World(running, settings, running.url, base, ids[0], ids[1], r.json()["id"])
    finally:
        running.stop()


def flow(world: World, scope: str, client: str = "app", user: str = "dr-mokoena", **kw: Any) -> dict[str, Any]:
    return code_flow(world.url, client, user, scope, patient=kw.pop("patient", world.patient), **kw)


def authorize_redirect(world: World, params: dict[str, str]) -> httpx.Response:
    return httpx.get(f"{world.url}/auth/authorize", params=params, timeout=30, follow_redirects=False)


# --- discovery -------------------------------------------------------------------------------------------
def test_smart_configuration_has_the_required_fields_and_only_s256(world: World) -> None:
    r = httpx.get(f"{world.base}/.well-known/smart-configuration", headers={"Accept": "text/html"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    config = r.json()
    assert config["issuer"] == world.base
    assert config["jwks_uri"] == f"{world.url}/auth/jwks"
    assert config["authorization_endpoint"] == f"{world.url}/auth/authorize"
    assert config["token_endpoint"] == world.token_url
    assert config["introspection_endpoint"] == f"{world.url}/auth/introspect"
    assert config["revocation_endpoint"] == f"{world.url}/auth/revoke"
    assert {"authorization_code", "client_credentials", "refresh_token"} <= set(config["grant_types_supported"])
    assert config["code_challenge_methods_supported"] == ["S256"]
    assert {"private_key_jwt", "client_secret_basic"} <= set(config["token_endpoint_auth_methods_supported"])
    assert set(config["token_endpoint_auth_signing_alg_values_supported"]) == {"RS384", "ES384"}
    assert all(isinstance(c, str) for c in config["capabilities"])
    assert {"launch-ehr", "launch-standalone", "sso-openid-connect", "client-public", "permission-v2",
            "context-standalone-patient", "context-ehr-patient", "authorize-post"} <= set(config["capabilities"])
    assert config["response_types_supported"] == ["code"]


def test_openid_configuration_and_jwks(world: World) -> None:
    config = httpx.get(f"{world.base}/.well-known/openid-configuration").json()
    for name in ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri", "response_types_supported",
                 "subject_types_supported", "id_token_signing_alg_values_supported"):
        assert name in config
    assert config["issuer"] == world.base
    assert "RS256" in config["id_token_signing_alg_values_supported"]
    keys = httpx.get(config["jwks_uri"]).json()["keys"]
    assert keys and all(k["kty"] == "RSA" and k["kid"] and "d" not in k for k in keys)


def test_cors_any_origin_for_discovery_registered_origins_for_token_and_api(world: World) -> None:
    for path in ("/fhir/.well-known/smart-configuration", "/fhir/metadata", "/auth/jwks"):
        r = httpx.get(f"{world.url}{path}", headers={"Origin": "https://anyone.example"})
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "*", path
    preflight = {"Origin": APP_ORIGIN, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "content-type"}
    for path in ("/auth/token", "/fhir/Patient"):
        r = httpx.options(f"{world.url}{path}", headers=preflight)
        assert r.status_code == 204 and r.headers["access-control-allow-origin"] == APP_ORIGIN, path
        assert "POST" in r.headers["access-control-allow-methods"]
        r = httpx.options(f"{world.url}{path}", headers=preflight | {"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in r.headers, path
    r = httpx.post(world.token_url, data={"grant_type": "password"}, headers={"Origin": APP_ORIGIN})
    assert r.headers["access-control-allow-origin"] == APP_ORIGIN
    assert "credentials" not in " ".join(r.headers.keys())


# --- the code flow --------------------------------------------------------------------------------------
def test_standalone_flow_with_picker_gives_patient_context_refresh_and_id_token(world: World) -> None:
    verifier, challenge = pkce_pair()
    browser = Browser(world.url)
    params = authorize_params(world.url, "app", "launch/patient openid fhirUser offline_access patient/*.rs",
                              challenge, nonce="n-42")
    redirect = sign_in_and_consent(browser, params, "dr-mokoena", patient=world.patient)
    browser.close()
    callback = callback_params(redirect)
    assert redirect.headers["location"].startswith(REDIRECT_URI)
    assert callback["state"] == "st-123"
    response = exchange_code(world.url, "app", callback["code"], verifier)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"
    token = response.json()
    assert token["token_type"] == "Bearer"
    assert isinstance(token["expires_in"], int) and 0 < token["expires_in"] <= 3600
    assert set(token["scope"].split()) == {"launch/patient", "openid", "fhirUser", "offline_access", "patient/*.rs"}
    assert token["patient"] == world.patient
    assert token["need_patient_banner"] is True
    assert token["refresh_token"] and token["id_token"]
    assert "encounter" not in token

    # the id_token verifies against the published JWKS
    keys = KeySet.import_key_set(httpx.get(f"{world.url}/auth/jwks").json())
    decoded = jwt.decode(token["id_token"], keys, algorithms=["RS256"])
    assert decoded.header["alg"] == "RS256" and decoded.header["kid"]
    claims = decoded.claims
    assert claims["iss"] == world.base
    assert claims["aud"] == ["app"]
    assert claims["sub"] == "dr-mokoena"
    assert claims["nonce"] == "n-42"
    assert claims["fhirUser"] == f"{world.base}/Practitioner/p-1"
    assert claims["exp"] > time.time()

    # introspection with the token itself as Bearer
    info = world.introspect(token["access_token"]).json()
    assert info["active"] is True
    assert info["client_id"] == "app"
    assert set(info["scope"].split()) == set(token["scope"].split())
    assert info["patient"] == world.patient
    assert info["iss"] == world.base and info["sub"] == "dr-mokoena"
    assert info["fhirUser"] == f"{world.base}/Practitioner/p-1"
    assert info["exp"] > time.time()

    # and the access token works on the FHIR API for the patient in context
    read = httpx.get(f"{world.base}/Patient/{world.patient}",
                     headers={"Authorization": f"Bearer {token['access_token']}"})
    assert read.status_code == 200, read.text


def test_portal_user_gets_own_patient_without_a_picker(world: World) -> None:
    token = code_flow(world.url, "app", "portal-thandi", "launch/patient patient/*.rs openid fhirUser")
    assert token["patient"] == world.patient
    assert "refresh_token" not in token  # neither offline_access nor online_access was asked for


def test_role_ceiling_cuts_scopes(world: World) -> None:
    # a portal user (role patient) can never hold write scopes, whatever the app asks for
    token = code_flow(world.url, "app", "portal-thandi", "launch/patient patient/Observation.cruds")
    assert token["scope"].split() == ["launch/patient", "patient/Observation.rs"]


def test_authorize_post_is_accepted(world: World) -> None:
    verifier, challenge = pkce_pair()
    browser = Browser(world.url)
    params = authorize_params(world.url, "app", "user/*.rs", challenge)
    page = browser.go(browser.http.post("/auth/authorize", data=params))
    page = browser.submit(page, "/auth/login", username="dr-mokoena", password=PASSWORD)
    consent = form_with(page.text, "/auth/consent")
    redirect = browser.http.post("/auth/consent", data={n: v for n, v, t, c in consent.fields if n and t == "hidden"}
                                 | {"scope": "user/*.rs", "decision": "allow"})
    browser.close()
    code = callback_params(redirect)["code"]
    assert exchange_code(world.url, "app", code, verifier).json()["scope"] == "user/*.rs"


def test_unticking_on_consent_removes_the_scope(world: World) -> None:
    token = flow(world, "launch/patient patient/*.rs offline_access", untick=("offline_access",))
    assert "offline_access" not in token["scope"].split()
    assert "refresh_token" not in token


def test_deny_redirects_with_access_denied(world: World) -> None:
    _, challenge = pkce_pair()
    browser = Browser(world.url)
    redirect = sign_in_and_consent(browser, authorize_params(world.url, "app", "user/*.rs", challenge),
                                   "dr-mokoena", decision="deny")
    browser.close()
    assert callback_params(redirect)["error"] == "access_denied"


def test_confidential_client_uses_basic_auth_and_wrong_secret_is_401(world: World) -> None:
    register_confidential_client(world.settings, "conf", "user/*.rs openid", secret="the-secret-1")
    verifier, challenge = pkce_pair()
    browser = Browser(world.url)
    redirect = sign_in_and_consent(browser, authorize_params(world.url, "conf", "user/*.rs", challenge),
                                   "dr-mokoena")
    browser.close()
    code = callback_params(redirect)["code"]
    bad = exchange_code(world.url, "conf", code, verifier, secret="wrong-secret")
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_client"
    # the public-client form (client_id only) does not authenticate a confidential client either
    assert exchange_code(world.url, "conf", code, verifier).json()["error"] == "invalid_client"

    verifier, challenge = pkce_pair()
    browser = Browser(world.url)
    redirect = sign_in_and_consent(browser, authorize_params(world.url, "conf", "user/*.rs", challenge),
                                   "dr-mokoena")
    browser.close()
    good = exchange_code(world.url, "conf", callback_params(redirect)["code"], verifier, secret="the-secret-1")
    assert good.status_code == 200, good.text
    # the confidential client may introspect its own token with client authentication
    info = httpx.post(f"{world.url}/auth/introspect", data={"token": good.json()["access_token"]},
                      auth=("conf", "the-secret-1")).json()
    assert info["active"] is True and info["client_id"] == "conf"


# --- PKCE, codes, redirect URIs, aud ---------------------------------------------------------------------
def _code(world: World, **params: Any) -> tuple[str, str]:
    verifier, challenge = pkce_pair()
    browser = Browser(world.url)
    redirect = sign_in_and_consent(browser, authorize_params(world.url, "app", "user/*.rs", challenge, **params),
                                   "dr-mokoena")
    browser.close()
    return callback_params(redirect)["code"], verifier


def test_missing_or_wrong_code_verifier_is_refused(world: World) -> None:
    code, _ = _code(world)
    r = exchange_code(world.url, "app", code, None)
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    code, _ = _code(world)
    r = exchange_code(world.url, "app", code, pkce_pair()[0])
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_plain_or_missing_challenge_is_refused_at_authorize(world: World) -> None:
    verifier, _ = pkce_pair()
    for challenge, method in ((verifier, "plain"), (None, None), (verifier, None)):
        r = authorize_redirect(world, authorize_params(world.url, "app", "user/*.rs", challenge, method=method))
        assert r.status_code == 302, r.text
        callback = callback_params(r)
        assert callback["error"] == "invalid_request", (method, callback)
        assert callback["state"] == "st-123"


def test_a_code_works_once(world: World) -> None:
    code, verifier = _code(world)
    assert exchange_code(world.url, "app", code, verifier).status_code == 200
    again = exchange_code(world.url, "app", code, verifier)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


def test_wrong_redirect_uri_is_refused(world: World) -> None:
    code, verifier = _code(world)
    r = exchange_code(world.url, "app", code, verifier, redirect_uri="https://app.example.test/other")
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    # an unregistered redirect URI at authorize is never redirected to
    _, challenge = pkce_pair()
    r = authorize_redirect(world, authorize_params(world.url, "app", "user/*.rs", challenge,
                                                   redirect_uri="https://evil.example/cb"))
    assert r.status_code == 400 and r.headers["content-type"].startswith("text/html")
    assert "location" not in r.headers


def test_wrong_aud_is_refused(world: World) -> None:
    _, challenge = pkce_pair()
    for aud in ("https://other.example/fhir", f"{world.base}/extra", ""):
        r = authorize_redirect(world, authorize_params(world.url, "app", "user/*.rs", challenge, aud=aud))
        assert callback_params(r)["error"] == "invalid_request", aud
    r = authorize_redirect(world, authorize_params(world.url, "app", "user/*.rs", challenge, aud=world.base + "/"))
    assert r.status_code == 303  # the trailing slash is normalised


# --- tokens: introspection, expiry, revocation, refresh -----------------------------------------------------
def test_introspection_of_unknown_expired_or_revoked_tokens_is_exactly_inactive(world: World) -> None:
    live = flow(world, "launch/patient patient/*.rs offline_access")
    auth = live["access_token"]
    assert world.introspect("no-such-token", auth).json() == {"active": False}

    expired = secrets.token_urlsafe(32)
    grant = Grant(client_id="app", scope="user/*.rs", aud=world.base, user="dr-mokoena")
    with_store(world.settings, lambda store: store.save_token(
        expired, "access", grant, datetime.now(UTC) - timedelta(hours=2), timedelta(hours=1)))
    r = world.introspect(expired, auth)
    assert r.status_code == 200 and r.json() == {"active": False}

    # revoking the refresh token ends the chain, the access token included
    r = httpx.post(f"{world.url}/auth/revoke", data={"token": live["refresh_token"], "client_id": "app"})
    assert r.status_code == 200
    other = flow(world, "user/*.rs")["access_token"]
    assert world.introspect(live["access_token"], other).json() == {"active": False}
    assert world.introspect(live["refresh_token"], other).json() == {"active": False}
    api = httpx.get(f"{world.base}/Patient/{world.patient}", headers={"Authorization": f"Bearer {auth}"})
    assert api.status_code == 401


def test_introspection_needs_a_caller(world: World) -> None:
    token = flow(world, "user/*.rs")["access_token"]
    r = httpx.post(f"{world.url}/auth/introspect", data={"token": token})
    assert r.status_code in (400, 401) and r.json()["error"] == "invalid_client"
    r = world.introspect(token, "not-a-token")
    assert r.status_code == 401


def test_refresh_keeps_context_rotates_and_never_widens(world: World) -> None:
    first = flow(world, "launch/patient patient/*.rs openid fhirUser offline_access")
    refresh = first["refresh_token"]

    wider = httpx.post(world.token_url, data={"grant_type": "refresh_token", "refresh_token": refresh,
                                              "client_id": "app", "scope": "patient/*.cruds offline_access"})
    assert wider.status_code == 400 and wider.json()["error"] == "invalid_scope"
    other = httpx.post(world.token_url, data={"grant_type": "refresh_token", "refresh_token": refresh,
                                              "client_id": "app", "scope": "user/*.rs"})
    assert other.status_code == 400 and other.json()["error"] == "invalid_scope"

    narrower = httpx.post(world.token_url, data={"grant_type": "refresh_token", "refresh_token": refresh,
                                                 "client_id": "app",
                                                 "scope": "launch/patient patient/Observation.rs offline_access"})
    assert narrower.status_code == 200, narrower.text
    second = narrower.json()
    assert narrower.headers["cache-control"] == "no-store"
    assert second["scope"].split() == ["launch/patient", "offline_access", "patient/Observation.rs"]
    assert second["patient"] == world.patient and second["need_patient_banner"] is True
    assert second["refresh_token"] != refresh
    info = world.introspect(second["access_token"]).json()
    assert info["patient"] == world.patient
    assert httpx.get(f"{world.base}/Patient/{world.patient}",
                     headers={"Authorization": f"Bearer {second['access_token']}"}).status_code in (200, 403)

    # without scope: same scope again
    third = httpx.post(world.token_url, data={"grant_type": "refresh_token", "client_id": "app",
                                              "refresh_token": second["refresh_token"]}).json()
    assert third["scope"] == second["scope"] and third["patient"] == world.patient

    # the rotated-out token is dead, and presenting it again ends the whole chain
    replay = httpx.post(world.token_url, data={"grant_type": "refresh_token", "refresh_token": refresh,
                                               "client_id": "app"})
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    assert world.introspect(third["access_token"], first["access_token"]).status_code == 401  # bearer dead too
    other_token = flow(world, "user/*.rs")["access_token"]
    assert world.introspect(third["access_token"], other_token).json() == {"active": False}


def test_refresh_by_another_client_is_refused(world: World) -> None:
    register_public_client(world.settings, "app2", "user/*.rs offline_access")
    token = flow(world, "user/*.rs offline_access")
    r = httpx.post(world.token_url, data={"grant_type": "refresh_token", "refresh_token": token["refresh_token"],
                                          "client_id": "app2"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


# --- EHR launch -------------------------------------------------------------------------------------------
def test_ehr_launch_carries_patient_encounter_and_fhir_context(world: World) -> None:
    browser, launch = ehr_launch(world.url, "dr-mokoena", "app", world.patient, world.encounter)
    verifier, challenge = pkce_pair()
    params = authorize_params(world.url, "app", "launch openid fhirUser patient/*.rs", challenge, launch=launch)
    redirect = sign_in_and_consent(browser, params, "dr-mokoena")  # already signed in: straight to consent
    browser.close()
    token = exchange_code(world.url, "app", callback_params(redirect)["code"], verifier).json()
    assert token["patient"] == world.patient
    assert token["encounter"] == world.encounter
    assert token["fhirContext"] == [{"reference": f"Encounter/{world.encounter}"}]
    assert token["need_patient_banner"] is True
    info = world.introspect(token["access_token"]).json()
    assert info["encounter"] == world.encounter and info["fhirContext"] == token["fhirContext"]

    # a launch value works once
    browser = Browser(world.url)
    _, challenge = pkce_pair()
    redirect = sign_in_and_consent(browser, authorize_params(world.url, "app", "launch patient/*.rs", challenge,
                                                             launch=launch), "dr-mokoena")
    browser.close()
    assert callback_params(redirect)["error"] == "invalid_request"


def test_launcher_needs_a_signed_in_staff_user(world: World) -> None:
    r = httpx.get(f"{world.url}/auth/launcher", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/auth/login")


# --- Backend Services -------------------------------------------------------------------------------------
@pytest.mark.parametrize("alg", ["ES384", "RS384"])
def test_backend_services_token(world: World, alg: str) -> None:
    key = register_backend_client(world.settings, f"svc-{alg}", "system/*.rs system/Observation.cruds", alg=alg)
    token = backend_token(world.url, f"svc-{alg}", key, "system/Patient.rs system/Observation.rs system/*.cud "
                                                        "patient/*.rs launch")
    assert token["token_type"] == "Bearer"
    assert token["expires_in"] == 300
    assert token["scope"].split() == ["system/Patient.rs", "system/Observation.rs", "system/Observation.cud"]
    assert "refresh_token" not in token
    r = httpx.get(f"{world.base}/Patient/{world.patient}", headers={"Authorization": f"Bearer {token['access_token']}"})
    assert r.status_code == 200, r.text


def _assertion_post(world: World, assertion: str, **extra: str) -> httpx.Response:
    data = {"grant_type": "client_credentials", "scope": "system/*.rs", "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion, **extra}
    return httpx.post(world.token_url, data=data, timeout=30)


def test_backend_assertions_that_must_fail(world: World) -> None:
    key = register_backend_client(world.settings, "svc", "system/*.rs", alg="ES384")
    stranger = new_backend_key("ES384", kid=key.kid)  # same kid, another key: a bad signature
    rsa = new_backend_key("RS384")
    url = world.token_url
    cases = {
        "bad signature": client_assertion("svc", url, stranger),
        "unknown kid": client_assertion("svc", url, key, kid="no-such-kid"),
        "exp too far": client_assertion("svc", url, key, exp_in=3600),
        "expired": client_assertion("svc", url, key, exp_in=-600),
        "wrong aud": client_assertion("svc", f"{world.url}/auth/other", key),
        "RS256": jwt.encode({"alg": "RS256", "kid": key.kid}, {"iss": "svc", "sub": "svc", "aud": url,
                                                               "exp": int(time.time()) + 60, "jti": "x1"},
                            rsa.key, algorithms=["RS256"]),
        "HS256": jwt.encode({"alg": "HS256", "kid": key.kid}, {"iss": "svc", "sub": "svc", "aud": url,
                                                               "exp": int(time.time()) + 60, "jti": "x2"},
                            OctKey.generate_key(256), algorithms=["HS256"]),
        "not a jwt": "abc.def",
        "too large": "a" * 20_000,
    }
    for name, assertion in cases.items():
        r = _assertion_post(world, assertion)
        assert r.status_code in (400, 401), (name, r.status_code, r.text)
        assert r.json()["error"] == "invalid_client", (name, r.text)

    good = client_assertion("svc", url, key)
    assert _assertion_post(world, good).status_code == 200
    replay = _assertion_post(world, good)
    assert replay.status_code in (400, 401) and "jti" in replay.json()["error_description"]

    r = _assertion_post(world, client_assertion("svc", url, key), client_assertion_type="urn:bogus")
    assert r.status_code in (400, 401) and r.json()["error"] == "invalid_client"
    r = _assertion_post(world, client_assertion("svc", url, key), grant_type="password")
    assert r.status_code == 400 and r.json()["error"] == "unsupported_grant_type"
    # Backend clients cannot fall back to a secret or to no authentication
    r = httpx.post(url, data={"grant_type": "client_credentials", "client_id": "svc", "scope": "system/*.rs"})
    assert r.status_code in (400, 401) and r.json()["error"] == "invalid_client"
    # and a public client cannot use client_credentials
    r = httpx.post(url, data={"grant_type": "client_credentials", "client_id": "app", "scope": "system/*.rs"})
    assert r.status_code in (400, 401)


def test_backend_keys_from_jwks_uri_and_jku_must_match(world: World) -> None:
    key = new_backend_key("RS384")
    body = json.dumps(key.public_jwks()).encode()
    fetched = []

    class Jwks(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            fetched.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Cache-Control", "max-age=120")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Jwks)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        jwks_uri = f"http://127.0.0.1:{httpd.server_address[1]}/jwks.json"
        register_backend_client(world.settings, "svc-uri", "system/*.rs", key=key, jwks_uri=jwks_uri)
        assert backend_token(world.url, "svc-uri", key, "system/*.rs")["scope"] == "system/*.rs"
        assert backend_token(world.url, "svc-uri", key, "system/*.rs")["scope"] == "system/*.rs"
        assert fetched == ["/jwks.json"]  # cached per Cache-Control
        r = _assertion_post(world, client_assertion("svc-uri", world.token_url, key,
                                                    extra_header={"jku": "https://evil.example/jwks.json"}))
        assert r.status_code in (400, 401) and r.json()["error"] == "invalid_client"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_backend_scope_with_unknown_constraint_parameter_is_dropped(world: World) -> None:
    key = register_backend_client(world.settings, "svc-q", "system/*.rs")
    token = backend_token(world.url, "svc-q", key, "system/Observation.rs?category=vital-signs "
                                                   "system/Observation.rs?no-such-param=1")
    assert token["scope"] == "system/Observation.rs?category=vital-signs"


def test_token_endpoint_bad_input_is_an_oauth_error(world: World) -> None:
    cases = [
        httpx.post(world.token_url, content=b"x" * 100_000, headers={"Content-Type": "application/x-www-form-urlencoded"}),
        httpx.post(world.token_url, json={"grant_type": "client_credentials"}),
        httpx.post(world.token_url, data={"grant_type": "authorization_code", "code": "x" * 5000, "client_id": "app",
                                          "code_verifier": "v" * 50}),
        httpx.post(world.token_url, data={"grant_type": "refresh_token", "refresh_token": "nope", "client_id": "app"}),
        httpx.post(world.token_url, data={"grant_type": "client_credentials", "scope": "s " * 10_000}),
        httpx.post(world.token_url, content=b"\xff\xfe=\x00", headers={"Content-Type": "application/x-www-form-urlencoded"}),
        httpx.post(world.token_url, data={}),
        httpx.post(world.token_url, data={"grant_type": "authorization_code", "code": "x"},
                   headers={"Authorization": "Basic " + base64.b64encode(b"\xff\xfe:x").decode()}),
        httpx.post(world.token_url, data={"grant_type": "authorization_code", "code": "x"},
                   headers={"Authorization": "Basic !!!"}),
        httpx.post(f"{world.url}/auth/introspect", data={"token": "x"},
                   headers={"Authorization": "Basic " + base64.b64encode(b"\xff:x").decode()}),
        httpx.post(f"{world.url}/auth/revoke", data={"token": "x", "token_type_hint": "bogus", "client_id": "app"}),
    ]
    for r in cases:
        assert r.status_code in (400, 401, 413), (r.status_code, r.text)
        assert r.headers["content-type"].startswith("application/json")
        assert "error" in r.json()


def test_unreadable_page_forms_are_refused_with_a_page_not_a_500(world: World) -> None:
    for path in ("/auth/login", "/auth/picker", "/auth/consent", "/auth/launcher"):
        huge = httpx.post(world.url + path, content=b"a=" + b"x" * 200_000,
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert huge.status_code == 413, (path, huge.status_code)
        assert huge.headers["content-type"].startswith("text/html")
        wrong = httpx.post(world.url + path, json={"username": "x"})
        assert wrong.status_code == 415, (path, wrong.status_code)


# --- sign-in: lockout, rate limit, CSRF ---------------------------------------------------------------------
def test_lockout_after_five_failures(world: World) -> None:
    register_user(world.settings, "locky", "doctor")
    _, challenge = pkce_pair()
    browser = Browser(world.url)
    page = browser.get("/auth/authorize", **authorize_params(world.url, "app", "user/*.rs", challenge))
    for _ in range(5):
        page = browser.submit(page, "/auth/login", username="locky", password="wrong password!")
        assert page.status_code == 401
        assert 'role="alert"' in page.text
    page = browser.submit(page, "/auth/login", username="locky", password=PASSWORD)
    assert page.status_code == 401  # locked: even the right password is refused
    browser.close()


def test_csrf_missing_or_wrong_is_refused(world: World) -> None:
    _, challenge = pkce_pair()
    browser = Browser(world.url)
    page = browser.get("/auth/authorize", **authorize_params(world.url, "app", "user/*.rs", challenge))
    for csrf in (None, "forged"):
        r = browser.submit(page, "/auth/login", csrf=csrf, username="dr-mokoena", password=PASSWORD)
        if csrf is None:
            form = form_with(page.text, "/auth/login")
            data = {n: v for n, v, t, c in form.fields if n and n != "csrf"}
            r = browser.http.post("/auth/login", data=data | {"username": "dr-mokoena", "password": PASSWORD})
        assert r.status_code == 403, r.text
    # a valid form from another browser (another session cookie) is refused too
    thief = Browser(world.url)
    form = form_with(page.text, "/auth/login")
    data = {n: v for n, v, t, c in form.fields if n}
    thief.get("/auth/login", next="launcher")
    r = thief.http.post("/auth/login", data=data | {"username": "dr-mokoena", "password": PASSWORD})
    assert r.status_code == 403
    thief.close()
    page = browser.submit(page, "/auth/login", username="dr-mokoena", password=PASSWORD)
    consent = form_with(page.text, "/auth/consent")
    data = {n: v for n, v, t, c in consent.fields if n and t == "hidden"}
    r = browser.http.post("/auth/consent", data=data | {"csrf": "forged", "scope": "user/*.rs", "decision": "allow"})
    assert r.status_code == 403
    browser.close()


def test_login_rate_limit_is_429(mongodb_uri: str) -> None:
    settings = Settings(mongodb_uri=mongodb_uri, database=database_name(), auth="on", login_attempts_per_minute=2)
    running = start_server(settings)
    try:
        browser = Browser(running.url)
        page = browser.get("/auth/login", next="launcher")
        statuses = []
        for _ in range(3):
            page = browser.submit(page, "/auth/login", username="nobody", password="wrong password!")
            statuses.append(page.status_code)
        browser.close()
        assert statuses[-1] == 429, statuses
    finally:
        running.stop()
