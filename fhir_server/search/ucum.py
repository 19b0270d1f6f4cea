"""Common UCUM units to canonical base units, exactly, so quantity search compares `5 g` with `5000 mg`.

Why a small table rather than a full UCUM library: clinical data uses a few dozen units (masses, volumes,
concentrations, times, rates), and search only needs "are these the same physical amount". Units are
parsed as UCUM terms (`mg/dL`, `kg/m2`, `10*3/uL`, `{beats}/min`) with SI prefixes on metric atoms;
the factor is kept as an exact fraction of Decimals and applied once, so 72 /min is exactly 1.2 /s.
Anything outside the table converts to nothing (None), and the quantity is then matched by its code.

Base units: g (mass), m (length), L (volume, as FHIR users expect rather than m3), s (time), mol
(amount), eq, U and [iU] (arbitrary amounts), % and mm[Hg] (kept as themselves), Cel (kept: affine).
"""

from __future__ import annotations

import re
from decimal import Decimal, DecimalException
from functools import lru_cache

from fhir_server.search.index.encode import DECIMAL128

_ONE = Decimal(1)

# Atoms that take SI prefixes: atom -> base unit (factor 1).
_METRIC = {"g": "g", "m": "m", "L": "L", "l": "L", "s": "s", "mol": "mol", "eq": "eq", "U": "U"}

# Atoms without prefixes: atom -> (factor, base unit).
_PLAIN: dict[str, tuple[Decimal, str]] = {
    "min": (Decimal(60), "s"),
    "h": (Decimal(3600), "s"),
    "d": (Decimal(86400), "s"),
    "wk": (Decimal(604800), "s"),
    "mo": (Decimal(2629800), "s"),  # mean Julian month: 30.4375 d
    "a": (Decimal(31557600), "s"),  # Julian year: 365.25 d
    "[in_i]": (Decimal("0.0254"), "m"),
    "[ft_i]": (Decimal("0.3048"), "m"),
    "[lb_av]": (Decimal("453.59237"), "g"),
    "[oz_av]": (Decimal("28.349523125"), "g"),
    "%": (_ONE, "%"),
    "mm[Hg]": (_ONE, "mm[Hg]"),
    "[iU]": (_ONE, "[iU]"),
    "[IU]": (_ONE, "[iU]"),
}

_PREFIXES: dict[str, int] = {
    "Y": 24, "Z": 21, "E": 18, "P": 15, "T": 12, "G": 9, "M": 6, "k": 3, "h": 2, "da": 1,
    "d": -1, "c": -2, "m": -3, "u": -6, "n": -9, "p": -12, "f": -15, "a": -18, "z": -21, "y": -24,
}

_ORDER = ("g", "m", "L", "s", "mol", "eq", "U", "[iU]", "mm[Hg]", "%")
_TERM = re.compile(r"(?P<atom>.*?[^\d+\-])(?P<exp>[+-]?\d+)?")
_POWER_OF_TEN = re.compile(r"10[*^](?P<exp>[+-]?\d+)")
_ANNOTATION = re.compile(r"\{[^{}]*\}")
_MAX_UNIT = 64  # longer codes are not units this table knows


class _Unknown(ValueError):
    pass


def _atom(atom: str) -> tuple[Decimal, str]:
    """(factor, base unit) for one atom, with an optional SI prefix on metric atoms."""
    if atom in _PLAIN:
        return _PLAIN[atom]
    if atom in _METRIC:
        return _ONE, _METRIC[atom]
    for prefix in (atom[:2], atom[:1]):
        if prefix in _PREFIXES and atom[len(prefix):] in _METRIC:
            return Decimal(1).scaleb(_PREFIXES[prefix]), _METRIC[atom[len(prefix):]]
    raise _Unknown(atom)


def _term(term: str) -> tuple[Decimal, dict[str, int]]:
    """(factor, {base unit: exponent}) for one term such as `mg`, `m2`, `10*3`, `{cells}`."""
    term = _ANNOTATION.sub("", term)
    if not term or term == "1":
        return _ONE, {}
    power = _POWER_OF_TEN.fullmatch(term)
    if power:
        return Decimal(1).scaleb(int(power["exp"])), {}
    if term.isdigit():
        return Decimal(term), {}
    match = _TERM.fullmatch(term)
    if match is None:
        raise _Unknown(term)
    factor, base = _atom(match["atom"])
    exponent = int(match["exp"] or 1)
    if exponent == 0:
        raise _Unknown(term)
    return factor, {base: exponent}


def _unit_string(dimensions: dict[str, int]) -> str:
    ordered = sorted((k for k, v in dimensions.items() if v), key=lambda k: (_ORDER.index(k), k))
    above = [k + (str(dimensions[k]) if dimensions[k] != 1 else "") for k in ordered if dimensions[k] > 0]
    below = [k + (str(-dimensions[k]) if dimensions[k] != -1 else "") for k in ordered if dimensions[k] < 0]
    text = ".".join(above) + "".join("/" + b for b in below)
    return text or "1"


def canonical(value: Decimal, code: str) -> tuple[Decimal, str] | None:
    """`value code` in canonical base units, e.g. (Decimal("5"), "mg") -> (Decimal("0.005"), "g");
    None when the code is not a unit this table converts (or, like [degF], has no linear conversion)."""
    conversion = _conversion(code)
    if conversion is None:
        return None
    numerator, denominator, unit = conversion
    try:
        return DECIMAL128.divide(DECIMAL128.multiply(value, numerator), denominator), unit
    except DecimalException:
        return None


@lru_cache(maxsize=1024)
def _conversion(code: str) -> tuple[Decimal, Decimal, str] | None:
    """(numerator, denominator, canonical unit) of a unit code; parsed once per distinct code."""
    code = code.strip()
    if code == "Cel":
        return _ONE, _ONE, "Cel"
    if not code or len(code) > _MAX_UNIT or "(" in code or " " in code:
        return None
    numerator, denominator = _ONE, _ONE
    dimensions: dict[str, int] = {}
    try:
        # UCUM: `.` multiplies, `/` divides, left to right; a leading `/` is "1/".
        for operator, term in re.findall(r"(^|[./])([^./]*)", code):
            factor, dims = _term(term)
            sign = -1 if operator == "/" else 1
            power = sign * (next(iter(dims.values())) if dims else 1)
            for base, exponent in dims.items():
                dimensions[base] = dimensions.get(base, 0) + sign * exponent
            if power > 0:
                numerator *= factor**power
            else:
                denominator *= factor ** (-power)
    except (_Unknown, DecimalException, ValueError):
        return None
    return numerator, denominator, _unit_string(dimensions)
