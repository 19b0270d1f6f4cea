"""Encoders of docs/search.md, one parameter type at a time, on hand-built nodes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from fhir_server.search.dates import MAX, MIN
from fhir_server.search.fhirpath import Node
from fhir_server.search.index import date, number, quantity, reference, string, token, uri
from fhir_server.search.index.encode import PREFIX_LENGTH, esc, norm, precision_range, prefixes

D = Decimal


def utc(year: int, month: int = 1, day: int = 1, hour: int = 0, minute: int = 0, second: int = 0,
        microsecond: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, microsecond, tzinfo=UTC)


# ----------------------------------------------------------------------------------------- helpers

@pytest.mark.parametrize(
    ("text", "expected"),
    [("Zoë", "zoe"), ("  Ärger   im\tBüro ", "arger im buro"), ("Straße", "strasse"), ("ﬁle", "file"),
     ("ÉCOLE", "ecole"), ("Nguyễn", "nguyen"), ("İstanbul", "istanbul"), ("plain ascii", "plain ascii"),
     ("", "")],
)
def test_norm_drops_accents_case_and_extra_whitespace(text: str, expected: str) -> None:
    assert norm(text) == expected


def test_esc_escapes_backslash_then_bar() -> None:
    assert esc("a|b\\c") == "a\\|b\\\\c"
    assert esc("plain") == "plain"


def test_prefixes() -> None:
    assert PREFIX_LENGTH == 4
    assert prefixes(["chalmers", "ch", "jim"]) == ["c", "ch", "cha", "chal", "j", "ji", "jim"]


@pytest.mark.parametrize(
    ("value", "lo", "hi"),
    [(D(100), "99.5", "100.5"), (D("1.50"), "1.495", "1.505"), (D("0"), "-0.5", "0.5"), (D("1E+2"), "50", "150"),
     (D("-2.5"), "-2.55", "-2.45")],
)
def test_precision_range(value: Decimal, lo: str, hi: str) -> None:
    assert precision_range(value) == (D(lo), D(hi))


# ------------------------------------------------------------------------------------------ string

def test_string_parts_of_names_and_addresses() -> None:
    name = Node({"use": "official", "family": "Zoë-Smith", "given": ["Anna", "Marié"], "prefix": ["Dr"],
                 "text": "Dr Anna Marié Zoë-Smith"}, "HumanName")
    address = Node({"line": ["1 Main Rd", "Unit 2"], "city": "Pretoria", "postalCode": "0002", "use": "home"},
                   "Address")
    encoded = string.values([name, address, Node("  Free   text ", "string")])
    assert encoded is not None
    assert encoded.ix == ["dr anna marie zoe-smith", "zoe-smith", "anna", "marie", "dr", "1 main rd", "unit 2",
                          "pretoria", "0002", "free text"]
    assert encoded.extra["ex"][:4] == ["Dr Anna Marié Zoë-Smith", "Zoë-Smith", "Anna", "Marié"]
    assert encoded.sk == "dr anna marie zoe-smith"
    assert "zoe-" in encoded.extra["ixp"] and "mari" in encoded.extra["ixp"]


def test_string_without_text_is_not_indexed() -> None:
    assert string.values([Node({"use": "home"}, "Address"), Node("   ", "string")]) is None


# ------------------------------------------------------------------------------------------- token

def test_token_codings_with_and_without_system() -> None:
    concept = Node({"coding": [{"system": "http://loinc.org", "code": "8480-6", "display": "Systolic BP"},
                               {"code": "local|code"}], "text": "Blood Pressure"}, "CodeableConcept")
    encoded = token.values([concept])
    assert encoded is not None
    assert encoded.ix == ["8480-6", "http://loinc.org|8480-6", "local\\|code", "|local\\|code"]
    assert encoded.sk == "8480-6"
    assert encoded.extra["tx"] == ["systolic bp", "blood pressure"]


def test_token_identifier_with_type_for_of_type() -> None:
    identifier = Node({"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                                            "code": "MR"}], "text": "Medical Record"},
                       "system": "urn:oid:1.2", "value": "12|34"}, "Identifier")
    encoded = token.values([identifier])
    assert encoded is not None
    assert encoded.ix == ["12\\|34", "urn:oid:1.2|12\\|34"]
    assert encoded.extra["ot"] == ["http://terminology.hl7.org/CodeSystem/v2-0203|MR|12\\|34"]
    assert encoded.extra["tx"] == ["medical record"]


def test_token_primitives_booleans_and_contact_points() -> None:
    encoded = token.values([Node("final", "code"), Node(True, "boolean"),
                            Node({"system": "email", "value": "a@b.example"}, "ContactPoint")])
    assert encoded is not None
    assert encoded.ix == ["final", "|final", "true", "|true", "a@b.example", "email|a@b.example"]
    assert token.values([Node({"system": "x"}, "Coding")]) is None
    # a text-only CodeableConcept has no code to match, but `:text` must still find it
    text_only = token.values([Node({"system": "x"}, "Coding"), Node({"text": "Only  text"}, "CodeableConcept")])
    assert text_only is not None and text_only.ix == [] and text_only.extra == {"tx": ["only text"]}


# --------------------------------------------------------------------------------------- reference

def test_reference_forms() -> None:
    bases = ("https://fhir.clinic.example/r4",)
    nodes = [Node({"reference": r}, "Reference") for r in (
        "Patient/1", "Patient/2/_history/3", "https://fhir.clinic.example/r4/Patient/4",
        "https://fhir.clinic.example/r4/Patient/5/_history/1", "https://other.example/fhir/Patient/6",
        "#contained", "urn:uuid:9d1b7c3e-0000-4000-8000-000000000000")]
    encoded = reference.values(nodes, bases)
    assert encoded is not None
    assert encoded.ix == ["Patient/1", "Patient/2", "Patient/4", "Patient/5", "https://other.example/fhir/Patient/6",
                          "urn:uuid:9d1b7c3e-0000-4000-8000-000000000000"]
    assert encoded.sk == "Patient/1"


def test_reference_identifier_canonicals_and_resources() -> None:
    encoded = reference.values([
        Node({"identifier": {"system": "https://acme.example/ids", "value": "1234"}}, "Reference"),
        Node("http://hl7.org/fhir/ValueSet/x|4.0.1", "canonical"),
        Node("http://hl7.org/fhir/ValueSet/y", "canonical"),
        Node({"resourceType": "Composition", "id": "c1"}, "Composition"),
    ])
    assert encoded is not None
    assert encoded.ix == ["http://hl7.org/fhir/ValueSet/x", "http://hl7.org/fhir/ValueSet/x|4.0.1",
                          "http://hl7.org/fhir/ValueSet/y", "Composition/c1"]
    assert encoded.extra["ri"] == ["1234", "https://acme.example/ids|1234"]
    only_identifier = reference.values([Node({"identifier": {"value": "9"}}, "Reference")])
    assert only_identifier is not None and only_identifier.ix == [] and only_identifier.extra["ri"] == ["9", "|9"]
    assert reference.values([Node({"reference": "#x"}, "Reference")]) is None


# -------------------------------------------------------------------------------------------- date

@pytest.mark.parametrize(
    ("value", "lo", "hi"),
    [
        ("2024", utc(2024, 1, 1), utc(2025, 1, 1)),
        ("2024-02", utc(2024, 2, 1), utc(2024, 3, 1)),
        ("2024-02-29", utc(2024, 2, 29), utc(2024, 3, 1)),
        ("2024-03-05T10:00:00+02:00", utc(2024, 3, 5, 8), utc(2024, 3, 5, 8, 0, 1)),
        ("2024-03-05T10:00:00.5Z", utc(2024, 3, 5, 10, 0, 0, 500000), utc(2024, 3, 5, 10, 0, 0, 600000)),
        # below a millisecond (what BSON keeps): widened to whole milliseconds, never empty
        ("2024-03-05T10:00:00.1234567Z", utc(2024, 3, 5, 10, 0, 0, 123000), utc(2024, 3, 5, 10, 0, 0, 124000)),
        ("9999", utc(9999, 1, 1), MAX),
        # beyond what a datetime holds: clamped, and kept one millisecond wide
        ("9999-12-31T23:00:00-05:00", MAX - timedelta(milliseconds=1), MAX),
        ("0001-01-01T01:00:00+05:00", MIN, MIN + timedelta(milliseconds=1)),
    ],
)
def test_date_precision_ranges(value: str, lo: datetime, hi: datetime) -> None:
    encoded = date.values([Node(value, "dateTime")])
    assert encoded is not None and encoded.ix == [{"lo": lo, "hi": hi}] and encoded.sk == lo


def test_period_ranges_with_open_ends() -> None:
    encoded = date.values([
        Node({"start": "2013-03-11", "end": "2013-03-20"}, "Period"),
        Node({"start": "2017-02-01T07:15:00+10:00"}, "Period"),
        Node({"end": "2014"}, "Period"),
        Node({}, "Period"),
    ])
    assert encoded is not None
    assert encoded.ix == [
        {"lo": utc(2013, 3, 11), "hi": utc(2013, 3, 21)},
        {"lo": utc(2017, 1, 31, 21, 15), "hi": MAX},
        {"lo": MIN, "hi": utc(2015, 1, 1)},
    ]


def test_timing_events_and_bounds() -> None:
    timing = Node({"event": ["2024-05-01", "2024-05-08T09:30:00Z"],
                   "repeat": {"boundsPeriod": {"start": "2024-05-01", "end": "2024-06-30"}, "frequency": 1}},
                  "Timing")
    encoded = date.values([timing, Node({"repeat": {"frequency": 3}}, "Timing")])
    assert encoded is not None
    assert encoded.ix == [
        {"lo": utc(2024, 5, 1), "hi": utc(2024, 5, 2)},
        {"lo": utc(2024, 5, 8, 9, 30), "hi": utc(2024, 5, 8, 9, 30, 1)},
        {"lo": utc(2024, 5, 1), "hi": utc(2024, 7, 1)},
    ]


def test_unparseable_dates_are_skipped() -> None:
    assert date.values([Node("last tuesday", "string"), Node("2024-13", "date"), Node({"value": 3}, "Age")]) is None


# ------------------------------------------------------------------------------------------ number

def test_number_values_and_ranges() -> None:
    encoded = number.values([Node(100, "integer"), Node(D("0.25"), "decimal"), Node(True, "boolean"),
                             Node({"low": {"value": D("0.1")}}, "Range")])
    assert encoded is not None
    assert encoded.ix == [
        {"lo": D("99.5"), "hi": D("100.5"), "v": D(100)},
        {"lo": D("0.245"), "hi": D("0.255"), "v": D("0.25")},
        {"lo": D("0.05"), "hi": D("Infinity")},
    ]
    assert encoded.sk == D(100)


def test_numbers_keep_at_most_34_digits() -> None:
    encoded = number.values([Node(D("1." + "3" * 40), "decimal")])
    assert encoded is not None and len(encoded.ix[0]["v"].as_tuple().digits) == 34


# ---------------------------------------------------------------------------------------- quantity

def test_quantity_with_ucum_conversion() -> None:
    encoded = quantity.values([
        Node({"value": D("5.4"), "unit": "mg/dL", "system": "http://unitsofmeasure.org", "code": "mg/dL"}, "Quantity"),
        Node({"value": 52, "unit": "yr", "system": "http://unitsofmeasure.org", "code": "a"}, "Age"),
        Node({"value": D("1.5"), "unit": "tablets"}, "SimpleQuantity"),
        Node({"value": 3, "system": "http://snomed.info/sct", "code": "385055001"}, "Quantity"),
    ])
    assert encoded is not None
    assert encoded.ix[0] == {"lo": D("5.35"), "hi": D("5.45"), "v": D("5.4"), "s": "http://unitsofmeasure.org|mg/dL",
                             "c": "mg/dL", "u": "mg/dL", "cv": D("0.054"), "cu": "g/L"}
    assert encoded.ix[1]["cv"] == D(52 * 31557600) and encoded.ix[1]["cu"] == "s"
    assert encoded.ix[2] == {"lo": D("1.45"), "hi": D("1.55"), "v": D("1.5"), "u": "tablets"}
    assert "cv" not in encoded.ix[3] and encoded.ix[3]["s"] == "http://snomed.info/sct|385055001"
    assert encoded.sk == D("5.4")


def test_money_range_and_unusable_quantities() -> None:
    encoded = quantity.values([
        Node({"value": D("150.00"), "currency": "ZAR"}, "Money"),
        Node({"low": {"value": 18, "system": "http://unitsofmeasure.org", "code": "a"}, "high": {"value": 65}},
             "Range"),
        Node({"unit": "mg"}, "Quantity"),
        Node({"origin": {"value": 0}, "period": 10, "dimensions": 1}, "SampledData"),
    ])
    assert encoded is not None
    assert encoded.ix == [
        {"lo": D("149.995"), "hi": D("150.005"), "v": D("150.00"), "s": "urn:iso:std:iso:4217|ZAR", "c": "ZAR"},
        {"lo": D("17.5"), "hi": D("65.5"), "s": "http://unitsofmeasure.org|a", "c": "a"},
    ]


# --------------------------------------------------------------------------------------------- uri

def test_uri_as_written() -> None:
    encoded = uri.values([Node("http://hl7.org/fhir/StructureDefinition/vitalsigns", "canonical"),
                          Node("urn:oid:1.2.3", "oid"), Node("", "uri")])
    assert encoded is not None
    assert encoded.ix == ["http://hl7.org/fhir/StructureDefinition/vitalsigns", "urn:oid:1.2.3"]
    assert encoded.sk == "http://hl7.org/fhir/StructureDefinition/vitalsigns"
