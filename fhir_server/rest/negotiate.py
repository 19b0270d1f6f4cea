"""Content negotiation: which formats a client may send and receive (http.html#mime-type).

This server speaks FHIR JSON only. `_format` wins over `Accept`; XML or anything else is 406 for responses
and 415 for request bodies, each with an OperationOutcome saying what is supported.
"""

from __future__ import annotations

from fhir_server import errors

FHIR_JSON = "application/fhir+json"
JSON_PATCH = "application/json-patch+json"
_JSON_TYPES = {FHIR_JSON, "application/json", "application/json+fhir"}
_FORMAT_ALIASES = {"json": FHIR_JSON, "application/json": "application/json", FHIR_JSON: FHIR_JSON,
                   "application/json+fhir": FHIR_JSON}
_ANY = {"*/*", "application/*"}


def response_type(format_param: str | None, accept: str | None) -> str:
    """The media type to answer with; raises 406 if the client accepts no JSON."""
    if format_param:
        chosen = _FORMAT_ALIASES.get(format_param.strip().replace(" ", "+"))
        if chosen is None:
            raise errors.not_acceptable(f"_format={format_param} is not supported; this server speaks "
                                        f"{FHIR_JSON} (_format=json)")
        return chosen
    if not accept:
        return FHIR_JSON
    offered = []
    for part in accept.split(","):
        media, _, params = part.strip().partition(";")
        media = media.strip().lower()
        if "q=0" in params.replace(" ", "") and "q=0." not in params.replace(" ", ""):
            continue  # q=0: explicitly not acceptable
        offered.append(media)
    if FHIR_JSON in offered or "application/json+fhir" in offered or any(m in _ANY for m in offered):
        return FHIR_JSON
    if "application/json" in offered:
        return "application/json"
    if "text/html" in offered or "text/plain" in offered:
        return FHIR_JSON  # browsers and curl-like tools: show them JSON rather than refuse
    raise errors.not_acceptable(f"Accept: {accept} cannot be met; this server answers with {FHIR_JSON}")


def check_body_type(content_type: str | None, allowed: set[str] | None = None) -> None:
    """Raises 415 unless the request body's media type is one we parse."""
    allowed = allowed or _JSON_TYPES
    media = (content_type or "").split(";")[0].strip().lower()
    if media not in allowed:
        shown = content_type or "none"
        raise errors.unsupported_media_type(
            f"Content-Type {shown} is not supported here; send {' or '.join(sorted(allowed))}")


def is_pretty(value: str | None) -> bool:
    return (value or "").lower() == "true"
