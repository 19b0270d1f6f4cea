"""number parameters: each value with the range its written precision implies.

`v` is the value itself; `[lo, hi)` is what "100" means to FHIR search (99.5 up to 100.5), kept so a
search can match on the stored value's own precision as well as the search value's.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from fhir_server.search.fhirpath import Node
from fhir_server.search.index.encode import Encoded, as_decimal, dedupe_dicts, precision_range

NEGATIVE_INFINITY = Decimal("-Infinity")
POSITIVE_INFINITY = Decimal("Infinity")


def number_entry(value: Any) -> dict[str, Decimal] | None:
    """`{lo, hi, v}` for a JSON number, or None when it is not one."""
    number = as_decimal(value)
    if number is None:
        return None
    lo, hi = precision_range(number)
    return {"lo": lo, "hi": hi, "v": number}


def range_entry(value: dict[str, Any]) -> dict[str, Any] | None:
    """A Range as `{lo, hi}`: low's lower bound to high's upper bound, infinite where a side is open."""
    low, high = value.get("low"), value.get("high")
    lo = number_entry(low.get("value")) if type(low) is dict else None
    hi = number_entry(high.get("value")) if type(high) is dict else None
    if lo is None and hi is None:
        return None
    return {"lo": lo["lo"] if lo else NEGATIVE_INFINITY, "hi": hi["hi"] if hi else POSITIVE_INFINITY}


def values(nodes: list[Node]) -> Encoded | None:
    """`ix`: `{lo, hi, v}` per decimal/integer (Range: `{lo, hi}` only); sort key: the first `v`."""
    out: list[dict[str, Any]] = []
    for node in nodes:
        value = node.value
        if type(value) is dict:  # a Range; or a Quantity under a custom number parameter: its value
            entry = range_entry(value) if node.fhir_type == "Range" else number_entry(value.get("value"))
        else:
            entry = number_entry(value)
        if entry is not None:
            out.append(entry)
    if not out:
        return None
    out = dedupe_dicts(out)
    return Encoded(out, next((e["v"] for e in out if "v" in e), None))
