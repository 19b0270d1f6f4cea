"""A FHIR R4 server on MongoDB for the POLMED mobile-clinic programme."""

from __future__ import annotations

__version__ = "0.1.0"

from fhir_server.app import create_app as create_app  # noqa: E402
from fhir_server.config import Settings as Settings  # noqa: E402
