"""Headless Chromium for the browser tests: Debian's `chromium` package driven by Playwright (its own
browser downloads are never used). `make test` installs the package when it is missing."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
from playwright import sync_api

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Without the background-networking flags Chromium keeps dialling Google's hosts, which this closed
# network refuses; a fresh profile per launch keeps runs independent.
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser() -> Iterator[sync_api.Browser]:
    """One browser per test module (Playwright's sync API runs its own event loop while it is open, so it
    must not outlive the module into tests that start their own)."""
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()
