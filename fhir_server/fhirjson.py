"""FHIR JSON in and out, losing nothing.

Decimals keep their exact text (FHIR decimal precision is significant: `1.50` is not `1.5`), so bodies are
parsed with `decimal.Decimal` for non-integers and written back with orjson, each Decimal emitted as a raw
number fragment. Stored resources are served as the bytes written at store time, never rebuilt.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import orjson

from fhir_server import errors
from fhir_server.types import JSONObject

_INT64_DIGITS = 18  # anything longer may overflow BSON int64; keep it as an exact Decimal instead


def _parse_int(text: str) -> int | Decimal:
    return int(text) if len(text.lstrip("-")) <= _INT64_DIGITS else Decimal(text)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_decoder = json.JSONDecoder(parse_float=Decimal, parse_int=_parse_int, parse_constant=_reject_constant)


def parse(body: bytes, max_depth: int) -> Any:
    """Parse a request body; raises a 400 `FhirError` for malformed, non-UTF-8 or too deeply nested JSON."""
    try:
        text = body.decode("utf-8")
        value = _decoder.decode(text.lstrip("\ufeff"))
    except UnicodeDecodeError:
        raise errors.invalid("The body is not UTF-8 encoded") from None
    except RecursionError:
        raise errors.invalid(f"The JSON body is nested deeper than {max_depth} levels") from None
    except ValueError as exc:
        raise errors.invalid(f"The body is not valid JSON: {exc}") from None
    depth = nesting_depth(value)
    if depth > max_depth:
        raise errors.invalid(f"The JSON body is nested {depth} levels deep; at most {max_depth} are allowed")
    return value


def nesting_depth(value: Any) -> int:
    """How many objects/arrays deep `value` goes (iterative, so hostile input cannot blow the stack)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            deepest = max(deepest, depth)
            stack.extend((v, depth + 1) for v in node.values() if isinstance(v, (dict, list)))
        elif isinstance(node, list):
            deepest = max(deepest, depth)
            stack.extend((v, depth + 1) for v in node if isinstance(v, (dict, list)))
    return deepest


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return orjson.Fragment(_decimal_text(value))
    to_decimal = getattr(value, "to_decimal", None)  # bson.Decimal128, without importing bson here
    if to_decimal is not None:
        return orjson.Fragment(_decimal_text(to_decimal()))
    raise TypeError(f"cannot serialise {type(value).__name__}")


def _decimal_text(value: Decimal) -> str:
    text = str(value)
    return text if "E" not in text else format(value, "f") if abs(value.adjusted()) < 30 else text.replace("E", "e")


def dumps(value: Any, pretty: bool = False) -> bytes:
    """Serialise to JSON bytes; Decimals keep their digits."""
    option = orjson.OPT_INDENT_2 if pretty else 0
    return orjson.dumps(value, default=_default, option=option)


def loads_stored(raw: bytes) -> JSONObject:
    """Re-read bytes this server wrote, keeping decimals exact (used when a stored resource must be edited)."""
    result: JSONObject = _decoder.decode(raw.decode("utf-8"))
    return result


def pretty(raw: bytes) -> bytes:
    """Re-indent stored bytes without touching a number's text."""
    return dumps(loads_stored(raw), pretty=True)
