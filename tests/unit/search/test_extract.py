"""Extractor on the official R4 examples and Synthea: what each parameter type stores (docs/search.md)."""

from __future__ import annotations

import gzip
import json
import random
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import bson
import pytest
from bson import Decimal128
from bson.codec_options import CodecOptions, TypeEncoder, TypeRegistry

from fhir_server.search.dates import MAX
from fhir_server.search.extract import Extractor
from fhir_server.search.registry import SearchRegistry

SHARED = Path(__file__).resolve().parents[4] / "shared" / "fhir"
EXAMPLES = SHARED / "r4-examples"
BASE = "https://fhir.clinic.example/r4"
D = Decimal


def example(name: str) -> dict[str, Any]:
    resource: dict[str, Any] = json.loads((EXAMPLES / f"{name}.json").read_text(), parse_float=Decimal)
    return resource


def utc(year: int, month: int = 1, day: int = 1, hour: int = 0, minute: int = 0, second: int = 0,
        microsecond: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, microsecond, tzinfo=UTC)


@pytest.fixture(scope="module")
def extractor() -> Extractor:
    return Extractor(SearchRegistry.official(), (BASE + "/",))


def extract(extractor: Extractor, resource: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return extractor.extract(resource["resourceType"], resource)


def test_patient_example(extractor: Extractor) -> None:
    out = extract(extractor, example("Patient-example"))
    ix = out["ix"]
    assert ix["family"] == ["chalmers", "windsor"]
    assert ix["given"] == ["peter", "james", "jim"]
    assert ix["name"] == ["chalmers", "peter", "james", "jim", "windsor"]
    assert ix["birthdate"] == [{"lo": utc(1974, 12, 25), "hi": utc(1974, 12, 26)}]
    assert ix["gender"] == ["male", "|male"]
    assert ix["identifier"] == ["12345", "urn:oid:1.2.36.146.595.217.0.1|12345"]
    assert ix["deceased"] == ["false", "|false"]
    assert ix["active"] == ["true", "|true"]
    assert ix["organization"] == ["Organization/1"]
    assert ix["address-city"] == ["pleasantville"]
    assert "phone|(03) 5555 6473" in ix["phone"] and "phone|(03) 5555 6473" in ix["telecom"]
    assert "email" not in ix
    assert "_id" not in ix and "_lastUpdated" not in ix
    assert out["ot"]["identifier"] == ["http://terminology.hl7.org/CodeSystem/v2-0203|MR|12345"]
    assert out["ex"]["family"] == ["Chalmers", "Windsor"]
    assert out["ixp"]["family"] == ["c", "ch", "cha", "chal", "w", "wi", "win", "wind"]
    assert out["sk"]["family"] == "chalmers" and out["sk"]["birthdate"] == utc(1974, 12, 25)
    assert out["pc"] == ["Patient/example"]  # a Patient is in its own compartment
    assert set(out) == {"ix", "ixp", "ex", "ot", "sk", "pc"}


def test_patient_compartment_membership_comes_from_the_compartment_definition(extractor: Extractor) -> None:
    observation = {"resourceType": "Observation", "id": "o", "status": "final", "code": {"text": "x"},
                   "subject": {"reference": "Patient/a"}, "performer": [{"reference": "Patient/b"},
                                                                          {"reference": "Practitioner/c"}]}
    assert extractor.extract("Observation", observation)["pc"] == ["Patient/a", "Patient/b"]
    organization = {"resourceType": "Organization", "id": "o", "name": "Clinic"}
    assert "pc" not in extractor.extract("Organization", organization)


def test_deceased_patients(extractor: Extractor) -> None:
    assert extract(extractor, example("Patient-pat3"))["ix"]["deceased"] == ["true", "|true"]
    assert extract(extractor, example("Patient-pat3"))["ix"]["death-date"] == [
        {"lo": utc(2015, 2, 14, 3, 42), "hi": utc(2015, 2, 14, 3, 42, 1)}]
    assert extract(extractor, example("Patient-pat4"))["ix"]["deceased"] == ["true", "|true"]


def test_observation_example(extractor: Extractor) -> None:
    out = extract(extractor, example("Observation-example"))
    ix = out["ix"]
    assert ix["code"][:2] == ["29463-7", "http://loinc.org|29463-7"]
    assert ix["subject"] == ["Patient/example"] and ix["patient"] == ["Patient/example"]
    assert ix["date"] == [{"lo": utc(2016, 3, 28), "hi": utc(2016, 3, 29)}]
    weight = {"lo": D("184.5"), "hi": D("185.5"), "v": D(185), "s": "http://unitsofmeasure.org|[lb_av]",
              "c": "[lb_av]", "u": "lbs", "cv": D("83914.58845"), "cu": "g"}
    assert ix["value-quantity"] == [weight]
    assert ix["code-value-quantity"] == [{"c0": ix["code"], "c1": [weight]}]
    assert ix["combo-code-value-quantity"] == [{"c0": ix["code"], "c1": [weight]}]
    assert "code-value-concept" not in ix and "value-concept" not in ix
    assert out["tx"]["code"] == ["body weight", "body weight measured"]
    assert out["sk"]["value-quantity"] == D(185) and out["sk"]["code"] == "29463-7"


def test_observation_components(extractor: Extractor) -> None:
    out = extract(extractor, example("Observation-blood-pressure"))
    ix = out["ix"]
    systolic, diastolic = ix["component-code-value-quantity"]
    assert "http://loinc.org|8480-6" in systolic["c0"] and systolic["c1"][0]["v"] == D(107)
    assert diastolic["c0"] == ["8462-4", "http://loinc.org|8462-4"] and diastolic["c1"][0]["v"] == D(60)
    assert "http://loinc.org|85354-9" in ix["combo-code"] and "http://loinc.org|8480-6" in ix["combo-code"]
    assert len(ix["combo-code-value-quantity"]) == 2  # the Observation itself has no value
    assert ix["component-value-quantity"][0]["cu"] == "mm[Hg]"
    assert out["ri"]["based-on"] == ["1234", "https://acme.org/identifiers|1234"]
    assert "based-on" not in ix
    assert ix["_profile"] == ["http://hl7.org/fhir/StructureDefinition/vitalsigns"]


def test_encounter_periods(extractor: Extractor) -> None:
    closed = extract(extractor, example("Encounter-f203"))["ix"]["date"]
    assert closed == [{"lo": utc(2013, 3, 11), "hi": utc(2013, 3, 21)}]
    open_end = extract(extractor, example("Encounter-emerg"))["ix"]["date"]
    assert open_end == [{"lo": utc(2017, 1, 31, 21, 15), "hi": MAX}]
    timed = extract(extractor, example("Encounter-home"))["ix"]
    assert timed["date"] == [{"lo": utc(2015, 1, 17, 6), "hi": utc(2015, 1, 17, 6, 30, 1)}]
    assert timed["patient"] == ["Patient/example"]


def test_medication_requests(extractor: Extractor) -> None:
    referenced = extract(extractor, example("MedicationRequest-medrx002"))["ix"]
    assert referenced["medication"] == ["Medication/med0316"]
    assert referenced["authoredon"] == [{"lo": utc(2015, 3, 1), "hi": utc(2015, 3, 2)}]
    assert referenced["patient"] == ["Patient/pat1"] and referenced["subject"] == ["Patient/pat1"]
    contained = extract(extractor, example("MedicationRequest-medrx0301"))["ix"]
    assert "medication" not in contained  # `#med0310` points inside the resource
    assert "code" not in contained  # the medication is a reference, not a CodeableConcept
    assert contained["intent"] == ["order", "|order"]


def test_appointment_participants(extractor: Extractor) -> None:
    ix = extract(extractor, example("Appointment-example"))["ix"]
    assert ix["actor"] == ["Patient/example", "Practitioner/example", "Location/1"]
    assert ix["patient"] == ["Patient/example"]
    assert ix["practitioner"] == ["Practitioner/example"]
    assert ix["location"] == ["Location/1"]
    assert ix["date"] == [{"lo": utc(2013, 12, 10, 9), "hi": utc(2013, 12, 10, 9, 0, 1)}]


def test_references_to_this_server_are_stored_relative(extractor: Extractor) -> None:
    observation = {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                   "subject": {"reference": f"{BASE}/Patient/7/_history/2"},
                   "performer": [{"reference": "https://elsewhere.example/fhir/Practitioner/8"},
                                 {"reference": "#p"}, {"reference": "Organization/9/_history/1"}]}
    ix = extract(extractor, observation)["ix"]
    assert ix["subject"] == ["Patient/7"] and ix["patient"] == ["Patient/7"]
    assert ix["performer"] == ["https://elsewhere.example/fhir/Practitioner/8", "Organization/9"]


def test_resource_level_parameters(extractor: Extractor) -> None:
    patient = {"resourceType": "Patient", "id": "p1", "meta": {
        "lastUpdated": "2024-01-01T00:00:00Z", "source": "http://clinic.example/ehr",
        "profile": ["http://hl7.org/fhir/StructureDefinition/Patient"],
        "tag": [{"system": "http://clinic.example/tags", "code": "mobile"}],
        "security": [{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}]}}
    ix = extract(extractor, patient)["ix"]
    assert ix["_tag"] == ["mobile", "http://clinic.example/tags|mobile"]
    assert ix["_security"] == ["R", "http://terminology.hl7.org/CodeSystem/v3-Confidentiality|R"]
    assert ix["_profile"] == ["http://hl7.org/fhir/StructureDefinition/Patient"]
    assert ix["_source"] == ["http://clinic.example/ehr"]
    assert "_id" not in ix and "_lastUpdated" not in ix


def test_bundle_composition_is_the_first_entry(extractor: Extractor) -> None:
    ix = extract(extractor, example("Bundle-father"))["ix"]
    assert ix["composition"] and ix["composition"][0].startswith("Composition/")
    assert ix["type"] == ["document", "|document"]


def test_custom_parameters_join_after_a_registry_change() -> None:
    registry = SearchRegistry.official()
    extractor = Extractor(registry)
    patient = {"resourceType": "Patient", "name": [{"use": "nickname", "given": ["Bongi"]}],
               "extension": [{"url": "http://clinic.example/route", "valueCode": "north-1"}]}
    assert "nickname" not in extractor.extract("Patient", patient).get("ix", {})
    registry.add(SearchRegistry.from_resource({
        "resourceType": "SearchParameter", "url": "http://clinic.example/SearchParameter/nickname",
        "code": "nickname", "base": ["Patient"], "type": "string",
        "expression": "Patient.name.where(use='nickname').given"}))
    registry.add(SearchRegistry.from_resource({
        "resourceType": "SearchParameter", "url": "http://clinic.example/SearchParameter/route",
        "code": "route", "base": ["Patient"], "type": "token",
        "expression": "Patient.extension('http://clinic.example/route').value"}))
    registry.add(SearchRegistry.from_resource({
        "resourceType": "SearchParameter", "url": "http://clinic.example/SearchParameter/given-count",
        "code": "given-count", "base": ["Patient"], "type": "number",
        "expression": "Patient.name.given.count()"}))  # outside the subset: fhirpathpy
    ix = extractor.extract("Patient", patient)["ix"]
    assert ix["nickname"] == ["bongi"]
    assert ix["route"] == ["north-1", "|north-1"]
    assert ix["given-count"] == [{"lo": D("0.5"), "hi": D("1.5"), "v": D(1)}]
    registry.remove("http://clinic.example/SearchParameter/nickname")
    assert "nickname" not in extractor.extract("Patient", patient)["ix"]


def test_odd_data_never_breaks_extraction(extractor: Extractor) -> None:
    """Validation runs first, but extraction must not be what turns bad data into a 500."""
    odd = {"resourceType": "Observation", "status": 3, "code": "not-an-object", "subject": ["x"],
           "effectiveDateTime": "yesterday", "valueQuantity": {"value": "12", "code": 5},
           "component": [None, {"code": {"coding": "x"}, "valueQuantity": [1]}], "identifier": [None, 7],
           "performer": [{"reference": None}], "meta": {"tag": "x"}}
    extract(extractor, odd)
    assert extractor.extract("Observation", {"resourceType": "Observation"}) == {}
    assert extractor.extract("Route", {"resourceType": "Route", "id": "r"}) == {}


class _DecimalEncoder(TypeEncoder):
    python_type = Decimal

    def transform_python(self, value: Decimal) -> Decimal128:
        return Decimal128(value)


_BSON: CodecOptions[dict[str, Any]] = CodecOptions(tz_aware=True, type_registry=TypeRegistry([_DecimalEncoder()]))
_ALLOWED = (str, bool, int, Decimal, datetime)


def _plain(value: Any) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    return isinstance(value, _ALLOWED) and (not isinstance(value, datetime) or value.tzinfo is not None)


def _corpus() -> list[dict[str, Any]]:
    resources: list[dict[str, Any]] = []

    def walk(resource: dict[str, Any]) -> None:
        resources.append(resource)
        for entry in resource.get("entry") or () if resource.get("resourceType") == "Bundle" else ():
            if isinstance(entry.get("resource"), dict):
                walk(entry["resource"])

    for path in sorted(EXAMPLES.glob("*.json")):
        walk(json.loads(path.read_text(), parse_float=Decimal))
    for path in sorted((SHARED / "synthea").glob("*.json.gz")):
        with gzip.open(path, "rt") as fh:
            walk(json.load(fh, parse_float=Decimal))
    return resources


def test_every_example_and_synthea_resource_extracts_to_storable_values(extractor: Extractor) -> None:
    resources = _corpus()
    assert len(resources) > 5000
    indexed = 0
    for resource in resources:
        out = extract(extractor, resource)
        assert set(out) <= {"ix", "ixp", "ex", "tx", "ot", "ri", "sk", "pc"}
        assert all(out.values()), "empty sections are omitted"
        assert _plain(out), resource.get("id")
        bson.encode(out, codec_options=_BSON)
        for entries in out.get("ix", {}).values():
            for entry in entries:
                if isinstance(entry, dict) and isinstance(entry.get("lo"), datetime):
                    assert entry["lo"] < entry["hi"]
        indexed += bool(out.get("ix"))
    assert indexed > 0.99 * len(resources)


def test_randomly_damaged_examples_never_break_extraction(extractor: Extractor) -> None:
    """Every element of every example replaced, now and then, by a value of the wrong JSON kind."""
    odd: list[Any] = [None, 1, D("1.5"), True, "x", "2024-13-45", [], {}, [None], [1, "a"], {"a": 1}, "#x",
                      "Patient/", "/_history/", "9999-12-31T23:59:59.9999999-12:00", "0000", D("NaN"), 10**40]
    rnd = random.Random(7)

    def damage(value: Any) -> None:
        if isinstance(value, dict):
            for key in [k for k in value if k != "resourceType"]:
                if rnd.random() < 0.15:
                    value[key] = rnd.choice(odd)
                else:
                    damage(value[key])
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if rnd.random() < 0.15:
                    value[index] = rnd.choice(odd)
                else:
                    damage(item)

    for path in sorted(EXAMPLES.glob("*.json")):
        resource = json.loads(path.read_text(), parse_float=Decimal)
        damage(resource)
        extract(extractor, resource)
