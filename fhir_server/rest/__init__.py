"""The FHIR REST API: one module per interaction, and a thin FastAPI adapter (`router.py`).

Interaction modules take plain values and a `RequestContext` and return a `FhirResponse`; only
`router.py` and `app.py` know about FastAPI/Starlette.
"""
