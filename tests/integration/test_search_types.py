"""Search by each parameter type, over a small hand-made data set whose expected matches are worked out by
hand (search.html). Each case: query -> the ids that must match, exactly."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import database_name, start_server
from fhir_server.config import Settings

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
MEMBER = "https://www.polmed.co.za/member-number"

PATIENTS = [
    {"resourceType": "Patient", "id": "p1", "active": True, "gender": "female", "birthDate": "1984-03-12",
     "name": [{"family": "Mokoena", "given": ["Thandi", "Grace"]}],
     "identifier": [{"system": MEMBER, "value": "M-100",
                     "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MB"}]}}],
     "telecom": [{"system": "phone", "value": "0821234567"}],
     "address": [{"city": "Pretoria", "state": "Gauteng", "postalCode": "0002"}]},
    {"resourceType": "Patient", "id": "p2", "active": False, "gender": "male", "birthDate": "1990",
     "name": [{"family": "Van der Merwe", "given": ["Pieter"]}],
     "identifier": [{"system": MEMBER, "value": "M-200"}],
     "address": [{"city": "Polokwane", "state": "Limpopo"}]},
    {"resourceType": "Patient", "id": "p3", "gender": "female", "birthDate": "1975-11-30",
     "name": [{"family": "Zoë", "given": ["Nomvula"]}],
     "identifier": [{"system": "urn:other", "value": "M-100"}],
     "deceasedDateTime": "2024-01-05"},
]


def vital(id: str, patient: str, code: str, value: object, unit: str, when: str, **extra: object) -> dict:
    return {"resourceType": "Observation", "id": id, "status": "final",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                      "code": "vital-signs"}]}],
            "code": {"coding": [{"system": LOINC, "code": code}], "text": "vital " + code},
            "subject": {"reference": f"Patient/{patient}"}, "effectiveDateTime": when,
            "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit}, **extra}


OBSERVATIONS = [
    vital("o1", "p1", "8867-4", 72, "/min", "2024-03-05T10:00:00Z"),
    vital("o2", "p1", "8867-4", 88, "/min", "2024-06-01T09:30:00Z"),
    vital("o3", "p2", "29463-7", 80, "kg", "2024-03-05"),
    vital("o4", "p2", "29463-7", 81500, "g", "2023-12-31T23:00:00Z"),
    {"resourceType": "Observation", "id": "o5", "status": "final",
     "code": {"coding": [{"system": LOINC, "code": "85354-9"}]}, "subject": {"reference": "Patient/p3"},
     "effectivePeriod": {"start": "2024-01-01", "end": "2024-01-31"},
     "component": [
         {"code": {"coding": [{"system": LOINC, "code": "8480-6"}]},
          "valueQuantity": {"value": 150, "unit": "mm[Hg]", "system": UCUM, "code": "mm[Hg]"}},
         {"code": {"coding": [{"system": LOINC, "code": "8462-4"}]},
          "valueQuantity": {"value": 95, "unit": "mm[Hg]", "system": UCUM, "code": "mm[Hg]"}}]},
]


@pytest.fixture(scope="module")
def api(mongodb_uri: str) -> Iterator[httpx.Client]:
    running = start_server(Settings(mongodb_uri=mongodb_uri, database=database_name(), auth="off"))
    try:
        with httpx.Client(base_url=running.url + "/fhir", timeout=30) as http:
            for resource in PATIENTS + OBSERVATIONS:
                response = http.put(f"/{resource['resourceType']}/{resource['id']}", json=resource)
                assert response.status_code == 201, response.text
            yield http
    finally:
        running.stop()


def ids(api: httpx.Client, url: str) -> set[str]:
    response = api.get(url)
    assert response.status_code == 200, response.text
    bundle = response.json()
    assert bundle["type"] == "searchset"
    return {e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"}


CASES = [
    # string: starts-with, case- and accent-insensitive; :exact; :contains
    ("Patient?name=mok", {"p1"}),
    ("Patient?family=VAN", {"p2"}),
    ("Patient?given=grace", {"p1"}),
    ("Patient?name=zoe", {"p3"}),
    ("Patient?family:exact=Zoë", {"p3"}),
    ("Patient?family:exact=zoë", set()),
    ("Patient?name:contains=erw", {"p2"}),
    ("Patient?address-city=pre", {"p1"}),
    ("Patient?address=limpopo", {"p2"}),
    ("Patient?name=mok,pie", {"p1", "p2"}),
    ("Patient?name=mok&gender=male", set()),
    # token
    ("Patient?gender=female", {"p1", "p3"}),
    ("Patient?gender:not=female", {"p2"}),
    (f"Patient?identifier={MEMBER}|M-100", {"p1"}),
    ("Patient?identifier=M-100", {"p1", "p3"}),
    (f"Patient?identifier={MEMBER}|", {"p1", "p2"}),
    ("Patient?identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MB|M-100", {"p1"}),
    ("Patient?active=true", {"p1"}),
    ("Patient?active=false", {"p2"}),
    ("Patient?phone=0821234567", {"p1"}),
    ("Patient?deceased=true", {"p3"}),
    (f"Observation?code={LOINC}|8867-4", {"o1", "o2"}),
    ("Observation?code=29463-7,85354-9", {"o3", "o4", "o5"}),
    ("Observation?code:text=vital 8867", {"o1", "o2"}),
    ("Observation?category=vital-signs", {"o1", "o2", "o3", "o4"}),
    ("Observation?code:missing=true", set()),
    ("Patient?deceased=false", {"p1", "p2"}),
    ("Observation?value-quantity:missing=true", {"o5"}),
    ("Patient?birthdate:missing=false", {"p1", "p2", "p3"}),
    ("Patient?_id=p1,p3", {"p1", "p3"}),
    # reference
    ("Observation?subject=Patient/p1", {"o1", "o2"}),
    ("Observation?patient=p2", {"o3", "o4"}),
    ("Observation?subject:Patient=p3", {"o5"}),
    ("Observation?subject:missing=true", set()),
    # date: precision ranges and prefixes
    ("Patient?birthdate=1984", {"p1"}),
    ("Patient?birthdate=1990-05", set()),  # 1990 is wider than May 1990: not contained
    ("Patient?birthdate=lt1980", {"p3"}),
    ("Patient?birthdate=ge1984-03-12", {"p1", "p2"}),
    ("Patient?birthdate=gt1984-03-12", {"p2"}),
    ("Patient?birthdate=le1984-03-12", {"p1", "p3"}),
    ("Patient?birthdate=ne1984-03-12", {"p2", "p3"}),
    ("Patient?birthdate=sa1985", {"p2"}),
    ("Patient?birthdate=eb1980", {"p3"}),
    ("Observation?date=2024-03-05", {"o1", "o3"}),
    ("Observation?date=2024-01", {"o5"}),
    ("Observation?date=ge2024-03-01&date=lt2024-07", {"o1", "o2", "o3"}),
    ("Observation?date=2024-01-15", set()),  # the period is not within one day
    ("Observation?date=le2024-01-15", {"o4", "o5"}),
    ("Observation?date=ap2023-12-31", {"o1", "o3", "o4", "o5"}),  # ±10% of the ~3 years to now
    # quantity: prefixes, implicit precision, UCUM conversion
    ("Observation?value-quantity=72||/min", {"o1"}),
    (f"Observation?value-quantity=gt80|{UCUM}|/min", {"o2"}),
    (f"Observation?value-quantity=80|{UCUM}|kg", {"o3"}),
    (f"Observation?value-quantity=81.5|{UCUM}|kg", {"o4"}),  # stored as 81500 g
    (f"Observation?value-quantity=ge80000|{UCUM}|g", {"o3", "o4"}),
    ("Observation?value-quantity=lt75", {"o1"}),
    # composite
    (f"Observation?component-code-value-quantity={LOINC}|8480-6$gt140", {"o5"}),
    (f"Observation?component-code-value-quantity={LOINC}|8462-4$gt140", set()),
    (f"Observation?code-value-quantity={LOINC}|8867-4$lt80", {"o1"}),
    # uri
    ("Patient?_profile=http://example.org/none", set()),
]


@pytest.mark.parametrize("url, expected", CASES, ids=[c[0] for c in CASES])
def test_search_matches_exactly(api: httpx.Client, url: str, expected: set[str]) -> None:
    assert ids(api, "/" + url) == expected


def test_post_search_with_form_body_equals_get(api: httpx.Client) -> None:
    response = api.post("/Patient/_search", content=b"gender=female&name=mok",
                        headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert {e["resource"]["id"] for e in response.json()["entry"]} == {"p1"}


def test_unknown_parameter_is_reported_not_ignored_silently(api: httpx.Client) -> None:
    bundle = api.get("/Patient", params={"gender": "male", "shoe-size": "9"}).json()
    matches = [e for e in bundle["entry"] if e["search"]["mode"] == "match"]
    outcome = [e for e in bundle["entry"] if e["search"]["mode"] == "outcome"]
    assert {e["resource"]["id"] for e in matches} == {"p2"}
    assert "shoe-size" in outcome[0]["resource"]["issue"][0]["diagnostics"]
    assert "shoe-size" not in bundle["link"][0]["url"]
    strict = api.get("/Patient", params={"gender": "male", "shoe-size": "9"}, headers={"Prefer": "handling=strict"})
    assert strict.status_code == 400 and "shoe-size" in strict.text


@pytest.mark.parametrize("url, text", [
    ("/Patient?birthdate=xx2020", "prefix"),
    ("/Patient?birthdate=2020-13-01", "birthdate"),
    ("/Patient?name:contains=a", "contains"),
    ("/Observation?value-quantity=abc", "value-quantity"),
    ("/Patient?_count=lots", "_count"),
    ("/Patient?_sort=shoe", "_sort"),
    ("/Patient?gender:missing=maybe", "true or false"),
    ("/Patient?_total=all", "_total"),
    ("/Observation?subject.subject.subject.subject.name=x", "chain"),
    ("/Patient?_include=Patient:nothing", "nothing"),
])
def test_bad_search_input_is_400_naming_the_parameter(api: httpx.Client, url: str, text: str) -> None:
    response = api.get(url)
    assert response.status_code == 400, response.text
    assert text.lower() in response.text.lower()
