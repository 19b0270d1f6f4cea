"""Server-rendered HTML for sign-in, patient picking, consent and the EHR launcher.

Why plain `string.Template` files and no JavaScript: the pages are few and small, they must work with a
keyboard and a screen reader (real labels, a legend per group, autofocus on the first field, errors in a
`role="alert"` element), and a strict Content-Security-Policy (no scripts at all) is then free. Every
value is HTML-escaped when substituted unless it is built here from escaped parts (`Html`).
"""

from __future__ import annotations

import functools
import html
import string
from datetime import datetime
from pathlib import Path
from typing import Any

from starlette.responses import HTMLResponse

from fhir_server.auth import scopes
from fhir_server.errors import FhirError
from fhir_server.search.filters import FilterContext
from fhir_server.search.parse import Parser
from fhir_server.search.translate import Translator
from fhir_server.services import Services

TEMPLATES = Path(__file__).parent / "templates"
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
}
MAX_LISTED = 20


class Html(str):
    """Markup that is already safe (built from escaped parts); substituted as is."""


def esc(value: Any) -> str:
    return value if isinstance(value, Html) else html.escape("" if value is None else str(value), quote=True)


@functools.cache
def _template(name: str) -> string.Template:
    return string.Template((TEMPLATES / name).read_text(encoding="utf-8"))


def render(name: str, title: str, status: int = 200, **values: Any) -> HTMLResponse:
    main = _template(name).substitute({k: esc(v) for k, v in values.items()})
    page = _template("base.html").substitute(title=esc(title), main=main)
    return HTMLResponse(page, status_code=status, headers=PAGE_HEADERS)


def message(heading: str, text: str, status: int) -> HTMLResponse:
    return render("message.html", heading, status, heading=heading, message=text)


def error_block(text: str | None) -> Html:
    return Html(f'<p class="error" role="alert" id="error">{esc(text)}</p>' if text else "")


# --- scope descriptions for the consent page ---------------------------------------------------------
_OTHER = {
    "openid": "Confirm who you are (your user name)",
    "fhirUser": "Know which person record you are (your FHIR user)",
    "profile": "See your profile",
    "launch": "Receive the patient and encounter you launched it with",
    "launch/patient": "Know which patient you chose",
    "launch/encounter": "Know which encounter you chose",
    "offline_access": "Keep access when you are not signed in (until you revoke it)",
    "online_access": "Keep access while you stay signed in",
}
_LETTERS = {"c": "create", "r": "read", "u": "update", "d": "delete", "s": "search"}
_LEVEL = {"patient": "of the selected patient", "user": "you can see", "system": "on this server"}


def describe(scope: str) -> str:
    parsed = scopes.parse_resource_scope(scope)
    if parsed is None:
        return _OTHER.get(scope, scope)
    verbs = [_LETTERS[c] for c in parsed.letters]
    what = "all record types" if parsed.resource_type == "*" else f"{parsed.resource_type} records"
    text = f"{', '.join(verbs).capitalize()} {what} {_LEVEL[parsed.level]}"
    if parsed.constraints:
        text += " where " + " and ".join(f"{k} is {v}" for k, v in parsed.constraints)
    return text


def scope_choices(offered: list[str]) -> Html:
    rows = []
    for i, scope in enumerate(offered):
        rows.append(f'<label for="scope-{i}"><input type="checkbox" id="scope-{i}" name="scope" '
                    f'value="{esc(scope)}" checked{" autofocus" if i == 0 else ""}> '
                    f'<span>{esc(describe(scope))} <code>{esc(scope)}</code></span></label>')
    return Html("\n    ".join(rows))


# --- patients ----------------------------------------------------------------------------------------
def patient_label(resource: dict[str, Any]) -> str:
    names = resource.get("name") or []
    name = names[0] if names and isinstance(names[0], dict) else {}
    text = name.get("text") or " ".join([*(name.get("given") or []), name.get("family") or ""]).strip()
    parts = [text or f"Patient {resource.get('id', '')}"]
    if resource.get("birthDate"):
        parts.append(f"born {resource['birthDate']}")
    if resource.get("gender"):
        parts.append(str(resource["gender"]))
    return ", ".join(parts)


async def find_patients(services: Services, q: str, base: str, now: datetime) -> list[tuple[str, str]]:
    """Up to MAX_LISTED (id, label) pairs; by name when `q` is given (the FHIR `name` search)."""
    criteria: dict[str, Any] = {}
    if q:
        settings = services.settings
        try:
            parser = Parser(services.search_registry, services.registry.types, False, settings.max_page_size,
                            settings.default_page_size)
            query = parser.parse("Patient", [("name", q[:100])])
            translator = Translator(services.search_registry, services.store, FilterContext((base,), now))
            criteria = await translator.query_filter("Patient", query)
        except FhirError:
            return []
    docs = await services.store.find("Patient", criteria, {"resource": 1}, MAX_LISTED, [("_id", 1)])
    return [(str(d["_id"]), patient_label(d.get("resource") or {})) for d in docs]


async def patient_exists(services: Services, patient_id: str) -> bool:
    if not patient_id or len(patient_id) > 64:
        return False
    stored = await services.store.current("Patient", patient_id)
    return stored is not None and not stored.deleted


def patient_choices(patients: list[tuple[str, str]]) -> Html:
    if not patients:
        return Html('<p role="status">No patients found. Try another name.</p>')
    rows = [f'<label for="patient-{i}"><input type="radio" id="patient-{i}" name="patient" value="{esc(pid)}" '
            f'required{" checked" if i == 0 else ""}> <span>{esc(label)}</span></label>'
            for i, (pid, label) in enumerate(patients)]
    return Html("\n    ".join(rows))
