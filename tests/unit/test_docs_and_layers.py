"""Docs stay true, and layers stay apart."""

from __future__ import annotations

import re
from pathlib import Path

from fhir_server.config import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_readme_documents_every_setting() -> None:
    readme = (ROOT / "README.md").read_text()
    documented = set(re.findall(r"`FHIR_([A-Z_]+)`", readme))
    expected = {name.upper() for name in Settings.model_fields}
    assert expected <= documented, expected - documented


def test_lower_layers_do_not_import_the_web_framework() -> None:
    for package in ("db", "model", "search"):
        for path in (ROOT / "fhir_server" / package).rglob("*.py"):
            text = path.read_text()
            assert not re.search(r"^\s*(from|import)\s+(fastapi|starlette)", text, re.M), path
