"""UCUM canonical units: exact Decimal conversions of the units clinical data uses."""

from __future__ import annotations

from decimal import Decimal

import pytest

from fhir_server.search.ucum import canonical

D = Decimal


@pytest.mark.parametrize(
    ("value", "code", "expected"),
    [
        ("5", "g", ("5", "g")),
        ("5", "kg", ("5000", "g")),
        ("5000", "mg", ("5", "g")),
        ("250", "ug", ("0.00025", "g")),
        ("3", "ng", ("3E-9", "g")),
        ("180", "cm", ("1.8", "m")),
        ("12", "[in_i]", ("0.3048", "m")),
        ("2", "km", ("2000", "m")),
        ("500", "mL", ("0.5", "L")),
        ("1", "dL", ("0.1", "L")),
        ("10", "uL", ("0.00001", "L")),
        ("90", "min", ("5400", "s")),
        ("2", "h", ("7200", "s")),
        ("1", "d", ("86400", "s")),
        ("1", "wk", ("604800", "s")),
        ("1", "mo", ("2629800", "s")),
        ("1", "a", ("31557600", "s")),
        ("5", "mmol", ("0.005", "mol")),
        ("100", "mg/dL", ("1", "g/L")),
        ("14", "g/dL", ("140", "g/L")),
        ("5.4", "mmol/L", ("0.0054", "mol/L")),
        ("7", "umol/L", ("0.000007", "mol/L")),
        ("20", "ug/L", ("0.00002", "g/L")),
        ("120", "mm[Hg]", ("120", "mm[Hg]")),
        ("45", "%", ("45", "%")),
        ("72", "/min", ("1.2", "/s")),
        ("72", "{beats}/min", ("1.2", "/s")),
        ("24.5", "kg/m2", ("24500", "g/m2")),
        ("6", "10*3/uL", ("6E+9", "/L")),
        ("185", "[lb_av]", ("83914.58845", "g")),
        ("37.5", "Cel", ("37.5", "Cel")),
    ],
)
def test_conversions(value: str, code: str, expected: tuple[str, str]) -> None:
    found = canonical(D(value), code)
    assert found is not None
    assert found[0] == D(expected[0]) and found[1] == expected[1]


def test_equal_amounts_in_different_units_meet() -> None:
    assert canonical(D("1.5"), "kg") == (D("1500"), "g")
    assert canonical(D("1500000"), "mg")[0] == D("1500")  # type: ignore[index]
    assert canonical(D(1), "g/L")[0] == canonical(D(100), "mg/dL")[0]  # type: ignore[index]


@pytest.mark.parametrize("code", ["[degF]", "xyz", "", "mg/(kg.d)", "m g", "a" * 100, "Pa", "cd"])
def test_unknown_or_affine_units_do_not_convert(code: str) -> None:
    assert canonical(D(1), code) is None
