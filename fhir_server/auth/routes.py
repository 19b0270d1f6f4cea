"""The authorization server's HTTP face: /auth/* and /fhir/.well-known/* (filled in by the AS work)."""

from __future__ import annotations

from fastapi import APIRouter

from fhir_server.services import Services

router = APIRouter()


async def start(services: Services) -> None:
    """Called once from the app's lifespan, after the stores exist (e.g. to create the first signing key)."""
