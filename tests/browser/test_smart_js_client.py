"""The npm `fhirclient` (SMART's JavaScript client, tests/browser/js-app) does an EHR launch in headless
Debian Chromium, driven by Playwright (never Playwright's downloaded browsers).

The app (`launch.html`, `app.html`, and `fhir-client.js` from node_modules) is served by a small
`http.server` on its own loopback port, so it is a different origin from the FHIR server: the token
request and the FHIR reads are real cross-origin requests, allowed only because the app's client
registration lists that origin in `allowed_origins`. A staff user signs in on the server's EHR launcher,
picks a patient and the app; the browser goes to `launch.html?iss=…&launch=…`, the JS client discovers the
endpoints and authorizes with PKCE S256, the user approves the consent page, and `app.html` exchanges the
code and shows the patient it read.

Set up the app once with `npm ci --prefix tests/browser/js-app` (`make test` does it).
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from fhir_server.config import Settings
from fhir_server.db import embedded
from tests.conftest import RunningServer, database_name, start_server
from tests.smart_helpers import PASSWORD, register_public_client, register_user, seed_api

APP_DIR = Path(__file__).parent / "js-app"
LIBRARY = APP_DIR / "node_modules" / "fhirclient" / "build" / "fhir-client.js"
FILES = {"/launch.html": APP_DIR / "launch.html", "/app.html": APP_DIR / "app.html", "/fhir-client.js": LIBRARY}
APP_SCOPE = "launch openid fhirUser patient/*.rs"



class _AppFiles(http.server.BaseHTTPRequestHandler):
    """Serves exactly the app's three files; records every path asked for."""

    requested: list[str]

    def do_GET(self) -> None:  # http.server calls do_<METHOD>
        path = urlsplit(self.path).path
        self.requested.append(self.path)
        file = FILES.get(path)
        if file is None:
            self.send_error(404)
            return
        body = file.read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "text/javascript" if path.endswith(".js") else "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass


@dataclass
class AppServer:
    origin: str
    requested: list[str] = field(default_factory=list)


@dataclass
class Site:
    server: RunningServer
    app: AppServer
    patients: dict[str, str]


@pytest.fixture(scope="module")
def app_server() -> Iterator[AppServer]:
    if not LIBRARY.is_file():
        pytest.fail(f"{LIBRARY} is missing: run `npm ci --prefix {APP_DIR}` (make test does)", pytrace=False)
    requested: list[str] = []
    handler = type("AppFiles", (_AppFiles,), {"requested": requested})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", embedded.free_port()), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield AppServer(f"http://127.0.0.1:{httpd.server_address[1]}", requested)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def site(mongodb_uri: str, app_server: AppServer) -> Iterator[Site]:
    settings = Settings(mongodb_uri=mongodb_uri, database=database_name(), auth="on",
                        login_attempts_per_minute=10_000)
    running = start_server(settings)
    try:
        assert urlsplit(running.url).port != urlsplit(app_server.origin).port
        patients: dict[str, str] = {}
        with seed_api(running) as api:
            for given, family in (("Lindiwe", "Mahlangu"), ("Tomas", "Berg")):
                name = [{"family": family, "given": [given]}]
                r = api.post("/Patient", json={"resourceType": "Patient", "name": name})
                assert r.status_code == 201, r.text
                patients[family] = r.json()["id"]
        register_user(settings, "nurse-js", "nurse", fhir_user="Practitioner/p-js")
        register_public_client(settings, "js-app", APP_SCOPE, redirect_uris=(f"{app_server.origin}/app.html",),
                               launch_uri=f"{app_server.origin}/launch.html", allowed_origins=(app_server.origin,))
        yield Site(running, app_server, patients)
    finally:
        running.stop()


@dataclass
class Run:
    """What one EHR launch in the browser showed and sent."""

    shown: dict[str, str]
    authorize: dict[str, str]  # the JS client's authorize request parameters
    launch: dict[str, str]  # the launch URL's query (iss, launch)
    token_response: dict[str, str]  # headers of the response to the cross-origin token request
    problems: list[str]  # page errors, console errors, HTTP errors the page saw


APP_FIELDS = ("status", "error", "context-patient", "patient-id", "patient-name", "scope", "banner", "fhir-user")


def _ehr_launch(browser: object, site: Site, app_origin: str, client_id: str, family: str, given: str) -> Run:
    """Sign in on the launcher as staff, launch `client_id` for the patient, approve, wait for app.html."""
    server = site.server.url
    context = browser.new_context()  # type: ignore[attr-defined]
    page = context.new_page()
    problems: list[str] = []
    seen: list[str] = []
    token_headers: dict[str, str] = {}
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("request", lambda r: seen.append(r.url))
    page.on("requestfinished", lambda r: token_headers.update(r.response().headers)  # type: ignore[union-attr]
            if r.url == f"{server}/auth/token" and r.method == "POST" else None)
    page.on("response", lambda r: problems.append(f"{r.status} {r.request.method} {r.url}")
            if r.status >= 400 else None)
    try:
        page.goto(f"{server}/auth/launcher")
        page.get_by_label("Username").fill("nurse-js")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.get_by_label("Search patients by name").fill(family)
        page.get_by_role("button", name="Search").click()
        page.get_by_label(f"{given} {family}").check()
        page.get_by_label("App").select_option(client_id)
        with page.expect_request(lambda r: r.url.startswith(f"{app_origin}/launch.html")) as launched:
            page.get_by_role("button", name="Launch").click()
        launch = {k: v[0] for k, v in parse_qs(urlsplit(launched.value.url).query).items()}

        # launch.html: the JS client discovers the endpoints and redirects to the authorize endpoint.
        page.wait_for_url(f"{server}/auth/**")
        authorize = next(url for url in seen if url.startswith(f"{server}/auth/authorize"))
        assert page.title().startswith("Allow"), page.content()[:2000]
        page.get_by_role("button", name="Allow").click()

        # app.html: the code goes to the token endpoint (cross-origin), then the patient is read.
        page.wait_for_url(f"{app_origin}/app.html?**")
        page.wait_for_function("['done', 'failed'].includes(document.getElementById('status').textContent)",
                               timeout=30_000)
        shown = {key: page.text_content(f"#{key}") or "" for key in APP_FIELDS}
        return Run(shown, {k: v[0] for k, v in parse_qs(urlsplit(authorize).query).items()}, launch,
                   token_headers, problems)
    finally:
        context.close()


def test_js_client_ehr_launch_shows_the_launched_patient(browser: object, site: Site) -> None:
    server, origin = site.server.url, site.app.origin
    picked = site.patients["Mahlangu"]
    run = _ehr_launch(browser, site, origin, "js-app", "Mahlangu", "Lindiwe")

    assert run.launch["iss"] == f"{server}/fhir" and run.launch["launch"]
    assert run.authorize["client_id"] == "js-app" and run.authorize["launch"] == run.launch["launch"]
    assert run.authorize["aud"] == f"{server}/fhir" and run.authorize["redirect_uri"] == f"{origin}/app.html"
    assert run.authorize["code_challenge_method"] == "S256" and run.authorize["code_challenge"]
    assert set(run.authorize["scope"].split()) == set(APP_SCOPE.split())

    assert run.shown["status"] == "done", (run.shown, run.problems)
    assert run.shown["context-patient"] == picked  # client.patient.id: the token response's `patient`
    assert run.shown["patient-id"] == picked and run.shown["patient-name"] == "Lindiwe Mahlangu"
    assert set(run.shown["scope"].split()) == set(APP_SCOPE.split())
    assert run.shown["banner"] == "true"
    assert run.shown["fhir-user"] == "Practitioner/p-js"  # from the id_token
    assert run.token_response["access-control-allow-origin"] == origin
    assert run.token_response["cache-control"] == "no-store"
    assert run.problems == [], (run.problems, site.app.requested)
    assert {"/launch.html", "/fhir-client.js", "/app.html"} <= {urlsplit(p).path for p in site.app.requested}


def test_js_client_from_an_unregistered_origin_cannot_read_the_token(browser: object, site: Site) -> None:
    """The same app served as http://localhost:<port> (another origin) by a client that registered no
    allowed_origins: the launch and consent work (plain navigations), but the browser withholds the
    token response, so the app never gets a token."""
    origin = site.app.origin.replace("127.0.0.1", "localhost")
    register_public_client(site.server.settings, "js-app-no-cors", APP_SCOPE,
                           redirect_uris=(f"{origin}/app.html",),
                           launch_uri=f"{origin}/launch.html?client=js-app-no-cors")
    run = _ehr_launch(browser, site, origin, "js-app-no-cors", "Berg", "Tomas")
    assert run.authorize["client_id"] == "js-app-no-cors"
    assert run.shown["status"] == "failed", run.shown
    assert "Network request failed" in run.shown["error"], run.shown  # what the blocked request raises
    assert run.shown["patient-id"] == ""
    assert "access-control-allow-origin" not in run.token_response
    assert any("CORS" in p for p in run.problems), run.problems
