"""Conditional request headers (http.html#concurrency, #cread) parsed into plain values."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime

from fhir_server import errors
from fhir_server.context import Prefer

_ETAG = re.compile(r'\s*(?:W/)?"?([0-9]+)"?\s*')


def version_from_etag(value: str, header: str) -> int:
    """`W/"3"`, `"3"` or `3` -> 3; anything else is a 400 naming the header."""
    match = _ETAG.fullmatch(value)
    if not match:
        raise errors.invalid(f'{header}: {value!r} is not a version ETag such as W/"3"')
    return int(match.group(1))


@dataclass(frozen=True)
class Preconditions:
    if_match: int | None = None
    if_none_match: str | None = None
    if_modified_since: datetime | None = None
    if_none_exist: str | None = None


def parse_preconditions(if_match: str | None, if_none_match: str | None, if_modified_since: str | None,
                        if_none_exist: str | None) -> Preconditions:
    modified: datetime | None = None
    if if_modified_since:
        try:
            modified = parsedate_to_datetime(if_modified_since)
        except (TypeError, ValueError):
            raise errors.invalid(f"If-Modified-Since: {if_modified_since!r} is not an HTTP date") from None
        if modified.tzinfo is None:
            raise errors.invalid("If-Modified-Since must be an HTTP date in GMT")
    return Preconditions(
        if_match=version_from_etag(if_match, "If-Match") if if_match else None,
        if_none_match=if_none_match.strip() if if_none_match else None,
        if_modified_since=modified,
        if_none_exist=if_none_exist or None,
    )


_PREFER_RETURN = {"minimal", "representation", "OperationOutcome"}


def parse_prefer(header: str | None) -> Prefer:
    """`Prefer: return=minimal, handling=strict, respond-async` -> Prefer; unknown tokens are ignored (RFC 7240)."""
    if not header:
        return Prefer()
    return_: str | None = None
    handling: str | None = None
    respond_async = False
    for token in header.split(","):
        for part in token.split(";"):
            name, _, value = part.strip().partition("=")
            name, value = name.strip().lower(), value.strip().strip('"')
            if name == "return" and value in _PREFER_RETURN:
                return_ = value
            elif name == "handling" and value in ("strict", "lenient"):
                handling = value
            elif name == "respond-async":
                respond_async = True
    return Prefer(return_=return_, handling=handling, respond_async=respond_async)
