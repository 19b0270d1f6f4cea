"""quantity parameters: the value with its precision range, its unit three ways, and a UCUM-canonical form.

`s` (`system|code`) answers `5|http://unitsofmeasure.org|mg`, `c`/`u` answer `5||mg` (code or unit text);
`cv`/`cu` hold the value in canonical UCUM base units so `5 g` and `5000 mg` match each other.
"""

from __future__ import annotations

from typing import Any

from fhir_server.search.fhirpath import Node
from fhir_server.search.index.encode import Encoded, as_decimal, dedupe_dicts, esc, precision_range
from fhir_server.search.index.number import NEGATIVE_INFINITY, POSITIVE_INFINITY
from fhir_server.search.ucum import canonical

UCUM = "http://unitsofmeasure.org"
ISO_4217 = "urn:iso:std:iso:4217"
_QUANTITIES = frozenset({"Quantity", "Age", "Count", "Distance", "Duration", "SimpleQuantity", "MoneyQuantity"})


def _units(quantity: dict[str, Any], entry: dict[str, Any]) -> None:
    system, code, unit = quantity.get("system"), quantity.get("code"), quantity.get("unit")
    if type(code) is str and code:
        entry["s"] = f"{esc(system) if type(system) is str else ''}|{esc(code)}"
        entry["c"] = esc(code)
    if type(unit) is str and unit:
        entry["u"] = unit


def quantity_entry(quantity: dict[str, Any]) -> dict[str, Any] | None:
    """`{lo, hi, v, s, c, u, cv, cu}` (keys present only when known) for a Quantity with a value."""
    number = as_decimal(quantity.get("value"))
    if number is None:
        return None
    lo, hi = precision_range(number)
    entry: dict[str, Any] = {"lo": lo, "hi": hi, "v": number}
    _units(quantity, entry)
    code = quantity.get("code")
    if quantity.get("system") == UCUM and type(code) is str:
        converted = canonical(number, code)
        if converted is not None:
            entry["cv"], entry["cu"] = converted
    return entry


def money_entry(money: dict[str, Any]) -> dict[str, Any] | None:
    number = as_decimal(money.get("value"))
    if number is None:
        return None
    lo, hi = precision_range(number)
    entry: dict[str, Any] = {"lo": lo, "hi": hi, "v": number}
    currency = money.get("currency")
    if type(currency) is str and currency:
        entry["s"] = f"{ISO_4217}|{esc(currency)}"
        entry["c"] = esc(currency)
    return entry


def range_entry(value: dict[str, Any]) -> dict[str, Any] | None:
    """A Range as `{lo, hi}` plus the units of whichever end names them; no `v` (it is not one value)."""
    low, high = value.get("low"), value.get("high")
    low_entry = quantity_entry(low) if type(low) is dict else None
    high_entry = quantity_entry(high) if type(high) is dict else None
    if low_entry is None and high_entry is None:
        return None
    entry: dict[str, Any] = {"lo": low_entry["lo"] if low_entry else NEGATIVE_INFINITY,
                             "hi": high_entry["hi"] if high_entry else POSITIVE_INFINITY}
    for key in ("s", "c", "u"):
        found = (low_entry or {}).get(key) or (high_entry or {}).get(key)
        if found is not None:
            entry[key] = found
    return entry


def values(nodes: list[Node]) -> Encoded | None:
    """`ix`: one entry per Quantity (and Age, Duration…), Money or Range; sort key: the first `v`."""
    out: list[dict[str, Any]] = []
    for node in nodes:
        value = node.value
        kind = node.fhir_type
        entry: dict[str, Any] | None = None
        if type(value) is dict:
            if kind in _QUANTITIES:
                entry = quantity_entry(value)
            elif kind == "Money":
                entry = money_entry(value)
            elif kind == "Range":
                entry = range_entry(value)
            # SampledData has no single value to compare: not indexed
        elif (number := as_decimal(value)) is not None:  # a bare number (custom parameters)
            lo, hi = precision_range(number)
            entry = {"lo": lo, "hi": hi, "v": number}
        if entry is not None:
            out.append(entry)
    if not out:
        return None
    out = dedupe_dicts(out)
    return Encoded(out, next((e["v"] for e in out if "v" in e), None))


