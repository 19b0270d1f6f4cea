"""The sign-in, patient-picker and consent pages in a real browser: headless Debian Chromium driven by
Playwright (never Playwright's downloaded browsers), once with the mouse and labels, once with the
keyboard alone (Tab, Space, Enter).

The browser is watched for its request to the app's redirect URI (a host that does not resolve), so the
test sees the code without any app running.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from fhir_server.config import Settings
from tests.conftest import RunningServer, database_name, start_server
from tests.smart_helpers import (
    PASSWORD,
    REDIRECT_URI,
    authorize_params,
    exchange_code,
    pkce_pair,
    register_public_client,
    register_user,
    seed_api,
)

SCOPE = "launch/patient offline_access patient/*.rs"


@dataclass
class Site:
    server: RunningServer
    patient: str


@pytest.fixture(scope="module")
def site(mongodb_uri: str) -> Iterator[Site]:
    settings = Settings(mongodb_uri=mongodb_uri, database=database_name(), auth="on",
                        login_attempts_per_minute=10_000)
    running = start_server(settings)
    try:
        with seed_api(running) as api:
            r = api.post("/Patient", json={"resourceType": "Patient", "name": [{"family": "Ndlovu", "given": ["Thandi"]}]})
        assert r.status_code == 201, r.text
        register_user(settings, "dr-browser", "doctor", fhir_user="Practitioner/p-9")
        register_public_client(settings, "web-app", SCOPE)
        yield Site(running, r.json()["id"])
    finally:
        running.stop()


def _open(browser: object, site: Site) -> tuple[object, str, dict[str, str]]:
    """A fresh browser context on the authorize URL; returns (page, verifier, captured callback)."""
    verifier, challenge = pkce_pair()
    context = browser.new_context()  # type: ignore[attr-defined]
    page = context.new_page()
    captured: dict[str, str] = {}
    params = authorize_params(site.server.url, "web-app", SCOPE, challenge)
    page.goto(f"{site.server.url}/auth/authorize?{urlencode(params)}")
    return page, verifier, captured


def _finish(site: Site, verifier: str, captured: dict[str, str]) -> dict[str, object]:
    assert "url" in captured, "the browser never reached the app's redirect URI"
    query = {k: v[0] for k, v in parse_qs(urlsplit(captured["url"]).query).items()}
    assert query["state"] == "st-123"
    response = exchange_code(site.server.url, "web-app", query["code"], verifier)
    assert response.status_code == 200, response.text
    token: dict[str, object] = response.json()
    return token


def test_sign_in_pick_patient_untick_scope_with_mouse_and_labels(browser: object, site: Site) -> None:
    page, verifier, captured = _open(browser, site)
    assert "Sign in to continue to App web-app" in page.inner_text("body")  # the user sees who is asking
    page.get_by_label("Username").fill("dr-browser")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()

    page.get_by_label("Search patients by name").fill("Ndlovu")
    page.get_by_role("button", name="Search").click()
    page.get_by_label("Thandi Ndlovu").check()
    page.get_by_role("button", name="Continue with this patient").click()

    assert page.title().startswith("Allow")
    page.get_by_label("Keep access when you are not signed in").uncheck()
    with page.expect_request(lambda r: r.url.startswith(REDIRECT_URI)) as sent:
        page.get_by_role("button", name="Allow").click()
    captured["url"] = sent.value.url

    token = _finish(site, verifier, captured)
    assert token["patient"] == site.patient
    assert str(token["scope"]).split() == ["launch/patient", "patient/*.rs"]
    assert "refresh_token" not in token
    page.context.close()


def test_keyboard_only(browser: object, site: Site) -> None:
    page, verifier, captured = _open(browser, site)
    focused = "document.activeElement && document.activeElement.id"
    assert page.evaluate(focused) == "username"  # autofocus: no pointer needed to start
    page.keyboard.type("dr-browser")
    page.keyboard.press("Tab")
    assert page.evaluate(focused) == "password"
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")

    page.wait_for_selector("#q")
    assert page.evaluate(focused) == "q"
    page.keyboard.type("Ndlovu")
    page.keyboard.press("Enter")
    page.wait_for_selector("#patient-0")
    page.keyboard.press("Tab")  # the Search button
    page.keyboard.press("Tab")  # the first patient (already selected)
    assert page.evaluate(focused) == "patient-0"
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")  # Continue with this patient

    page.wait_for_selector("#scope-0")
    assert page.evaluate(focused) == "scope-0"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.value") == "offline_access"
    page.keyboard.press("Space")  # untick
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Allow"
    with page.expect_request(lambda r: r.url.startswith(REDIRECT_URI)) as sent:
        page.keyboard.press("Enter")
    captured["url"] = sent.value.url

    token = _finish(site, verifier, captured)
    assert str(token["scope"]).split() == ["launch/patient", "patient/*.rs"]
    page.context.close()
