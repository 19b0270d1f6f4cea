"""SearchRegistry: the official R4 parameters, per-type views, custom parameters, index keys."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from fhir_server.errors import FhirError
from fhir_server.model.structure import load_tables
from fhir_server.search.registry import (
    BUNDLE_FILE,
    MAX_INDEXES,
    PATIENT_COMPARTMENT_FILE,
    SearchParam,
    SearchRegistry,
    patient_compartment,
)

SHARED = Path(__file__).resolve().parents[4] / "shared" / "fhir" / "r4-definitions"


def custom(**overrides: Any) -> dict[str, Any]:
    resource = {
        "resourceType": "SearchParameter",
        "url": "http://clinic.example/SearchParameter/patient-nickname",
        "name": "nickname",
        "status": "active",
        "code": "nickname",
        "base": ["Patient"],
        "type": "string",
        "expression": "Patient.name.where(use='nickname').given",
    }
    resource.update(overrides)
    return {k: v for k, v in resource.items() if v is not None}


def test_the_official_bundle_is_shipped_verbatim() -> None:
    with gzip.open(BUNDLE_FILE) as fh:
        shipped = json.load(fh)
    if (SHARED / "search-parameters.json").exists():
        assert shipped == json.loads((SHARED / "search-parameters.json").read_text())
    assert json.loads(PATIENT_COMPARTMENT_FILE.read_text())["resourceType"] == "CompartmentDefinition"


def test_official_holds_all_1375_parameters() -> None:
    registry = SearchRegistry.official()
    assert len(registry) == 1375
    birthdate = registry.by_url("http://hl7.org/fhir/SearchParameter/individual-birthdate")
    assert birthdate is not None and birthdate.type == "date" and "Patient" in birthdate.base


def test_for_type_includes_resource_and_domain_resource_parameters() -> None:
    registry = SearchRegistry.official()
    patient = registry.for_type("Patient")
    for code in ("_id", "_lastUpdated", "_tag", "_profile", "_security", "_source", "_text", "_content",
                 "name", "family", "birthdate", "identifier", "gender", "deceased"):
        assert code in patient, code
    assert patient["_lastUpdated"].expression == "Resource.meta.lastUpdated"
    assert "_text" not in registry.for_type("Bundle")  # Bundle is a Resource, not a DomainResource
    assert "_id" in registry.for_type("Bundle")
    assert "code" not in patient


def test_get_returns_the_type_specific_parameter() -> None:
    registry = SearchRegistry.official()
    code = registry.get("Observation", "code")
    assert code is not None and code.type == "token" and "Observation.code" in (code.expression or "")
    subject = registry.get("Observation", "subject")
    assert subject is not None and subject.type == "reference" and "Patient" in subject.targets
    composite = registry.get("Observation", "code-value-quantity")
    assert composite is not None and composite.type == "composite"
    assert composite.components == (
        ("http://hl7.org/fhir/SearchParameter/clinical-code", "code"),
        ("http://hl7.org/fhir/SearchParameter/Observation-value-quantity", "value.as(Quantity)"),
    )
    birthdate = registry.get("Patient", "birthdate")
    assert birthdate is not None and "eq" in birthdate.comparators
    assert registry.get("Patient", "nope") is None


def test_instances_are_independent_and_versioned() -> None:
    one, two = SearchRegistry.official(), SearchRegistry.official()
    param = SearchRegistry.from_resource(custom())
    before = one.version()
    one.add(param)
    assert one.version() == before + 1
    assert one.get("Patient", "nickname") == param
    assert two.get("Patient", "nickname") is None
    assert SearchRegistry.official().get("Patient", "nickname") is None


def test_add_replaces_by_url_and_remove_takes_it_away() -> None:
    registry = SearchRegistry.official()
    registry.add(SearchRegistry.from_resource(custom()))
    registry.add(SearchRegistry.from_resource(custom(code="alias")))
    assert registry.get("Patient", "nickname") is None
    alias = registry.get("Patient", "alias")
    assert alias is not None
    version = registry.version()
    registry.remove(alias.url)
    assert registry.get("Patient", "alias") is None and registry.version() == version + 1
    registry.remove("http://nowhere.example/none")  # unknown: no change
    assert registry.version() == version + 1


def test_a_custom_parameter_on_resource_applies_to_every_type() -> None:
    registry = SearchRegistry.official()
    registry.add(SearchRegistry.from_resource(custom(code="version-id", base=["Resource"], type="token",
                                                      expression="Resource.meta.versionId")))
    assert registry.get("Observation", "version-id") is not None
    assert registry.get("Bundle", "version-id") is not None


def test_a_custom_parameter_wins_over_an_official_code() -> None:
    registry = SearchRegistry.official()
    param = SearchRegistry.from_resource(custom(code="name", url="http://clinic.example/SearchParameter/n"))
    registry.add(param)
    assert registry.get("Patient", "name") == param


def test_from_resource_projects_every_field() -> None:
    param = SearchRegistry.from_resource(custom(
        type="reference", code="clinic", expression="Patient.generalPractitioner", target=["Organization"],
        modifier=["identifier"], multipleOr=False, chain=["name"]))
    assert param == SearchParam(
        code="clinic", url="http://clinic.example/SearchParameter/patient-nickname", type="reference",
        base=("Patient",), expression="Patient.generalPractitioner", targets=("Organization",),
        modifiers=("identifier",), multiple_or=False, chain=("name",))


@pytest.mark.parametrize(
    ("overrides", "location"),
    [
        ({"expression": None}, "SearchParameter.expression"),
        ({"expression": "  "}, "SearchParameter.expression"),
        ({"type": "fuzzy"}, "SearchParameter.type"),
        ({"type": "special"}, "SearchParameter.type"),
        ({"base": None}, "SearchParameter.base"),
        ({"base": []}, "SearchParameter.base"),
        ({"base": "Patient"}, "SearchParameter.base"),
        ({"code": None}, "SearchParameter.code"),
        ({"code": "ix.name"}, "SearchParameter.code"),
        ({"code": "$where"}, "SearchParameter.code"),
        ({"url": None}, "SearchParameter.url"),
        ({"expression": "Patient.name.where("}, "SearchParameter.expression"),
        ({"type": "composite", "component": [{"definition": "http://x", "expression": "code"}]},
         "SearchParameter.component"),
        ({"type": "composite", "component": [{"definition": "http://x"}, {"definition": "http://y",
                                                                          "expression": "value"}]},
         "SearchParameter.component[0]"),
    ],
)
def test_from_resource_refuses_unusable_parameters(overrides: dict[str, Any], location: str) -> None:
    with pytest.raises(FhirError) as caught:
        SearchRegistry.from_resource(custom(**overrides))
    assert caught.value.status == 400
    assert caught.value.issues[0].expression == (location,)


def test_from_resource_refuses_other_resources() -> None:
    with pytest.raises(FhirError):
        SearchRegistry.from_resource({"resourceType": "Patient"})


def test_index_keys_follow_the_rule() -> None:
    registry = SearchRegistry.official()
    patient = registry.index_keys("Patient")
    assert patient[0] == "ts"
    for key in ("pc", "ix.identifier", "ixp.name", "ix.birthdate.lo", "ix.birthdate.hi"):
        assert key in patient
    # `link` is served by `pc`; family and given are narrowed by the `name` prefix index
    assert not {"ix.link", "ixp.family", "ixp.given"} & set(patient)
    observation = registry.index_keys("Observation")
    for key in ("ix.subject", "ix.patient", "ix.code", "ix.identifier", "ix.date.lo"):
        assert key in observation
    assert "ix.patient" in registry.index_keys("Encounter")
    assert "ix.url" in registry.index_keys("ValueSet")
    for resource_type in load_tables().resources:
        keys = registry.index_keys(resource_type)
        assert len(keys) <= MAX_INDEXES and len(keys) == len(set(keys)), resource_type
        assert "ix._lastUpdated.lo" not in keys


def test_patient_compartment() -> None:
    compartment = patient_compartment()
    assert compartment["Observation"] == ("subject", "performer")
    assert compartment["Patient"] == ("link",)
    assert "Organization" not in compartment
    compartment["Observation"] = ()
    assert patient_compartment()["Observation"] == ("subject", "performer")  # a copy each time
