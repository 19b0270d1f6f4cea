"""ResourceValidator: R4 structure, JSON kinds, primitive formats, cardinality and required bindings.

Each test names the behaviour the REST layer relies on: an error issue means 400, none means valid.
The corpus tests at the end run every official R4 example and every Synthea resource through it.
"""

from __future__ import annotations

import gzip
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from fhir_server.errors import Issue
from fhir_server.fhirjson import loads_stored
from fhir_server.model.registry import R4_RESOURCE_TYPES
from fhir_server.model.structure import load_tables
from fhir_server.model.validate import ResourceValidator, second_opinion

SHARED = Path(__file__).resolve().parents[4] / "shared" / "fhir"


@pytest.fixture(scope="module")
def validator() -> ResourceValidator:
    return ResourceValidator()


def errors(validator: ResourceValidator, resource: dict[str, Any]) -> list[Issue]:
    return [i for i in validator.validate(resource) if i.severity == "error"]


def where(issues: list[Issue]) -> set[tuple[str, str]]:
    """(code, location) pairs: what the tests pin down."""
    return {(i.code, i.expression[0]) for i in issues}


def observation(**extra: Any) -> dict[str, Any]:
    return {"resourceType": "Observation", "status": "final", "code": {"text": "weight"}, **extra}


# ------------------------------------------------------------------------------------- unknown elements


def test_valid_minimal_resource_has_no_issues(validator: ResourceValidator) -> None:
    assert validator.validate({"resourceType": "Patient", "id": "p1", "gender": "female"}) == []


def test_unknown_top_level_element_rejected_with_its_path(validator: ResourceValidator) -> None:
    assert where(errors(validator, {"resourceType": "Patient", "foo": 1})) == {("structure", "Patient.foo")}


def test_unknown_element_inside_datatype_rejected_with_its_path(validator: ResourceValidator) -> None:
    patient = {"resourceType": "Patient", "name": [{"family": "Dlamini"}, {"given": ["Thabo"], "middle": "x"}]}
    assert where(errors(validator, patient)) == {("structure", "Patient.name[1].middle")}


def test_unknown_element_inside_backbone_element_rejected(validator: ResourceValidator) -> None:
    patient = {"resourceType": "Patient", "contact": [{"gender": "male", "nickname": "x"}]}
    assert where(errors(validator, patient)) == {("structure", "Patient.contact[0].nickname")}


def test_underscore_companion_of_complex_element_is_unknown(validator: ResourceValidator) -> None:
    assert where(errors(validator, {"resourceType": "Patient", "_name": [{"id": "x"}]})) == {
        ("structure", "Patient._name")
    }


# ------------------------------------------------------------------------------------------- JSON kinds


@pytest.mark.parametrize("value", ["yes", "true", 1, 0, None, [True]])
def test_boolean_must_be_json_true_or_false(validator: ResourceValidator, value: Any) -> None:
    issues = errors(validator, {"resourceType": "Patient", "active": value})
    assert where(issues) == {("structure", "Patient.active")}


@pytest.mark.parametrize("value", [True, Decimal("2.5"), "2", Decimal("2E+1")])
def test_integer_must_be_a_json_integer(validator: ResourceValidator, value: Any) -> None:
    issues = errors(validator, {"resourceType": "Patient", "multipleBirthInteger": value})
    assert where(issues) == {("structure", "Patient.multipleBirthInteger")}


@pytest.mark.parametrize(
    ("element", "value", "ok"),
    [
        ("multipleBirthInteger", 2**31 - 1, True),
        ("multipleBirthInteger", -(2**31), True),
        ("multipleBirthInteger", 2**31, False),
        ("multipleBirthInteger", Decimal("123456789012345678901234"), False),  # long literal kept as Decimal
    ],
)
def test_integer_is_32_bit(validator: ResourceValidator, element: str, value: Any, ok: bool) -> None:
    issues = errors(validator, {"resourceType": "Patient", element: value})
    assert where(issues) == (set() if ok else {("value", f"Patient.{element}")})


def test_unsigned_int_must_not_be_negative(validator: ResourceValidator) -> None:
    issues = errors(validator, {"resourceType": "Patient", "photo": [{"size": -1}]})
    assert where(issues) == {("value", "Patient.photo[0].size")}
    assert errors(validator, {"resourceType": "Patient", "photo": [{"size": 0}]}) == []


def test_positive_int_must_be_at_least_one(validator: ResourceValidator) -> None:
    sampled = {"origin": {"value": 0}, "period": 1, "dimensions": 0}
    assert where(errors(validator, observation(valueSampledData=sampled))) == {
        ("value", "Observation.valueSampledData.dimensions")
    }
    sampled["dimensions"] = 1
    assert errors(validator, observation(valueSampledData=sampled)) == []


def test_decimal_values_accepted_as_decimal_or_integer(validator: ResourceValidator) -> None:
    assert errors(validator, observation(valueQuantity={"value": Decimal("72.50"), "unit": "kg"})) == []
    assert errors(validator, observation(valueQuantity={"value": 72})) == []
    assert errors(validator, observation(valueQuantity={"value": Decimal("1.5E+3")})) == []


@pytest.mark.parametrize("value", ["72.5", True, None])
def test_decimal_rejects_strings_booleans_and_null(validator: ResourceValidator, value: Any) -> None:
    issues = errors(validator, observation(valueQuantity={"value": value}))
    assert where(issues) == {("structure", "Observation.valueQuantity.value")}


@pytest.mark.parametrize("value", [19900101, True, {"value": "1990"}])
def test_string_like_primitive_must_be_a_json_string(validator: ResourceValidator, value: Any) -> None:
    assert where(errors(validator, {"resourceType": "Patient", "birthDate": value})) == {
        ("structure", "Patient.birthDate")
    }


# -------------------------------------------------------------------------------------- primitive formats


@pytest.mark.parametrize(
    "value", ["1990-13-01", "1990-1-1", "90-01-01", "2023-02-29", "2023-04-31", "1990-01-01T10:00:00Z"]
)
def test_invalid_date_rejected(validator: ResourceValidator, value: str) -> None:
    assert where(errors(validator, {"resourceType": "Patient", "birthDate": value})) == {("value", "Patient.birthDate")}


@pytest.mark.parametrize("value", ["1990", "1990-02", "2024-02-29", "2000-02-29", "1990-12-31"])
def test_valid_partial_and_leap_dates_accepted(validator: ResourceValidator, value: str) -> None:
    assert errors(validator, {"resourceType": "Patient", "birthDate": value}) == []


def test_datetime_with_time_needs_timezone_and_seconds(validator: ResourceValidator) -> None:
    assert errors(validator, observation(effectiveDateTime="2020-05-01T10:30:00+02:00")) == []
    assert where(errors(validator, observation(effectiveDateTime="2020-05-01T10:30:00"))) == {
        ("value", "Observation.effectiveDateTime")
    }
    assert where(errors(validator, observation(effectiveDateTime="2020-05-01T10:30Z"))) == {
        ("value", "Observation.effectiveDateTime")
    }


def test_instant_requires_full_precision_and_timezone(validator: ResourceValidator) -> None:
    assert errors(validator, observation(issued="2020-05-01T10:30:00.123Z")) == []
    for bad in ("2020-05-01T10:30:00", "2020-05-01"):
        assert where(errors(validator, observation(issued=bad))) == {("value", "Observation.issued")}


@pytest.mark.parametrize("value", ["has space", "a" * 65, "under_score"])
def test_resource_id_must_match_the_id_pattern(validator: ResourceValidator, value: str) -> None:
    assert where(errors(validator, {"resourceType": "Patient", "id": value})) == {("value", "Patient.id")}


def test_code_must_not_have_leading_or_double_spaces(validator: ResourceValidator) -> None:
    issues = errors(validator, observation(code={"coding": [{"system": "http://loinc.org", "code": " 29463-7"}]}))
    assert where(issues) == {("value", "Observation.code.coding[0].code")}


@pytest.mark.parametrize("value", ["", "   ", "\n\t"])
def test_empty_or_whitespace_string_rejected(validator: ResourceValidator, value: str) -> None:
    issues = errors(validator, {"resourceType": "Patient", "name": [{"given": ["Thabo", value]}]})
    assert where(issues) == {("value", "Patient.name[0].given[1]")}


def test_uri_must_not_contain_whitespace(validator: ResourceValidator) -> None:
    issues = errors(
        validator, {"resourceType": "Patient", "identifier": [{"system": "http://ex.org/a b", "value": "1"}]}
    )
    assert where(issues) == {("value", "Patient.identifier[0].system")}


def test_base64_binary_checked(validator: ResourceValidator) -> None:
    assert errors(validator, {"resourceType": "Patient", "photo": [{"data": "aGVs\nbG8="}]}) == []
    issues = errors(validator, {"resourceType": "Patient", "photo": [{"data": "not base64!"}]})
    assert where(issues) == {("value", "Patient.photo[0].data")}


def test_unicode_whitespace_inside_strings_is_fine(validator: ResourceValidator) -> None:
    # FHIR regexes are Java/XML Schema ones: \S is ASCII-only there, so a non-breaking space is ordinary text.
    assert errors(validator, {"resourceType": "Patient", "name": [{"text": "Thabo\u00a0Dlamini"}]}) == []


# ------------------------------------------------------------------------------------- arrays and shapes


def test_single_object_where_array_required_rejected(validator: ResourceValidator) -> None:
    assert where(errors(validator, {"resourceType": "Patient", "name": {"family": "x"}})) == {
        ("structure", "Patient.name")
    }


def test_array_where_single_value_required_rejected(validator: ResourceValidator) -> None:
    assert where(errors(validator, {"resourceType": "Patient", "gender": ["male"]})) == {
        ("structure", "Patient.gender")
    }


def test_empty_array_rejected(validator: ResourceValidator) -> None:
    assert where(errors(validator, {"resourceType": "Patient", "name": []})) == {("structure", "Patient.name")}


def test_empty_object_rejected(validator: ResourceValidator) -> None:
    assert where(errors(validator, {"resourceType": "Patient", "maritalStatus": {}})) == {
        ("structure", "Patient.maritalStatus")
    }


def test_null_values_rejected(validator: ResourceValidator) -> None:
    assert where(errors(validator, {"resourceType": "Patient", "gender": None})) == {("structure", "Patient.gender")}
    issues = errors(validator, {"resourceType": "Patient", "name": [{"given": ["a", None]}]})
    assert where(issues) == {("structure", "Patient.name[0].given[1]")}


def test_object_where_primitive_expected_rejected(validator: ResourceValidator) -> None:
    assert where(errors(validator, {"resourceType": "Patient", "gender": {"code": "male"}})) == {
        ("structure", "Patient.gender")
    }


def test_primitive_where_object_expected_rejected(validator: ResourceValidator) -> None:
    assert where(errors(validator, {"resourceType": "Patient", "maritalStatus": "M"})) == {
        ("structure", "Patient.maritalStatus")
    }


# ---------------------------------------------------------------------------------------- choice types


def test_choice_type_accepts_allowed_types(validator: ResourceValidator) -> None:
    assert errors(validator, observation(valueQuantity={"value": 1, "unit": "kg"})) == []
    assert errors(validator, observation(valueString="positive")) == []
    assert errors(validator, observation(valueCodeableConcept={"text": "positive"})) == []


def test_choice_type_rejects_types_not_allowed(validator: ResourceValidator) -> None:
    # Observation.value[x] does not include Attachment or Address; `valueFoo` is no type at all
    issues = errors(validator, observation(valueAttachment={"url": "http://x"}, valueFoo="x"))
    assert where(issues) == {("structure", "Observation.valueAttachment"), ("structure", "Observation.valueFoo")}


def test_choice_type_allows_only_one_alternative(validator: ResourceValidator) -> None:
    issues = errors(validator, observation(valueString="x", valueBoolean=True))
    assert where(issues) == {("structure", "Observation.valueBoolean")}


def test_bare_choice_name_is_unknown(validator: ResourceValidator) -> None:
    assert where(errors(validator, observation(value="x"))) == {("structure", "Observation.value")}


def test_invalid_value_inside_choice_reported_at_its_json_path(validator: ResourceValidator) -> None:
    issues = errors(validator, observation(valueQuantity={"value": "72"}))
    assert where(issues) == {("structure", "Observation.valueQuantity.value")}


def test_required_choice_element_missing(validator: ResourceValidator) -> None:
    task: dict[str, Any] = {
        "resourceType": "Task",
        "status": "draft",
        "intent": "order",
        "input": [{"type": {"text": "x"}}],
    }
    issues = errors(validator, task)
    assert [(i.code, i.expression[0]) for i in issues] == [("required", "Task.input[0].value[x]")]
    task["input"][0]["valueString"] = "y"
    assert errors(validator, task) == []


# ----------------------------------------------------------------------------------- nested resources


def test_contained_resource_validated_by_its_own_type(validator: ResourceValidator) -> None:
    obs = observation(contained=[{"resourceType": "Patient", "id": "p", "gender": "xx", "foo": 1}])
    assert where(errors(validator, obs)) == {
        ("code-invalid", "Observation.contained[0].gender"),
        ("structure", "Observation.contained[0].foo"),
    }


def test_contained_resource_of_unknown_type_rejected(validator: ResourceValidator) -> None:
    assert where(errors(validator, observation(contained=[{"resourceType": "Nope", "id": "x"}]))) == {
        ("structure", "Observation.contained[0]")
    }
    assert where(errors(validator, observation(contained=[{"id": "x"}]))) == {("structure", "Observation.contained[0]")}


def test_bundle_entry_resources_validated(validator: ResourceValidator) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": {"resourceType": "Patient", "active": True}, "request": {"method": "POST", "url": "Patient"}},
            {"resource": {"resourceType": "Patient", "active": "yes"}, "request": {"method": "POST", "url": "Patient"}},
        ],
    }
    assert where(errors(validator, bundle)) == {("structure", "Bundle.entry[1].resource.active")}


def test_parameters_resource_part_validated(validator: ResourceValidator) -> None:
    params = {
        "resourceType": "Parameters",
        "parameter": [{"name": "p", "resource": {"resourceType": "Patient", "birthDate": "1990-13-01"}}],
    }
    assert where(errors(validator, params)) == {("value", "Parameters.parameter[0].resource.birthDate")}


def test_content_reference_elements_resolve(validator: ResourceValidator) -> None:
    questionnaire = {
        "resourceType": "Questionnaire",
        "status": "active",
        "item": [
            {
                "linkId": "1",
                "type": "group",
                "item": [
                    {
                        "linkId": "1.1",
                        "type": "string",
                        "item": [
                            {"linkId": "1.1.1", "type": "boolean", "colour": "red"},
                        ],
                    }
                ],
            }
        ],
    }
    assert where(errors(validator, questionnaire)) == {("structure", "Questionnaire.item[0].item[0].item[0].colour")}
    bundle = {"resourceType": "Bundle", "type": "searchset", "entry": [{"link": [{"relation": "self"}]}]}
    assert where(errors(validator, bundle)) == {("required", "Bundle.entry[0].link[0].url")}


# --------------------------------------------------------------------------- primitive extension companions


def test_primitive_extension_companion_accepted(validator: ResourceValidator) -> None:
    patient = {
        "resourceType": "Patient",
        "birthDate": "1990-01-01",
        "_birthDate": {
            "id": "bd",
            "extension": [
                {
                    "url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime",
                    "valueDateTime": "1990-01-01T10:00:00+02:00",
                }
            ],
        },
    }
    assert errors(validator, patient) == []


def test_primitive_extension_companion_array_aligned_with_nulls(validator: ResourceValidator) -> None:
    ext = {"extension": [{"url": "http://example.org/ext", "valueString": "x"}]}
    patient = {"resourceType": "Patient", "name": [{"given": ["Thabo", "Sipho"], "_given": [None, ext]}]}
    assert errors(validator, patient) == []
    patient = {"resourceType": "Patient", "name": [{"given": ["Thabo", None], "_given": [None, ext]}]}
    assert errors(validator, patient) == []


def test_primitive_extension_companion_without_value_satisfies_required(validator: ResourceValidator) -> None:
    absent = {
        "extension": [{"url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason", "valueCode": "unknown"}]
    }
    obs = {"resourceType": "Observation", "_status": absent, "code": {"text": "x"}}
    assert errors(validator, obs) == []


def test_misaligned_companion_array_rejected(validator: ResourceValidator) -> None:
    ext = {"extension": [{"url": "http://example.org/ext", "valueString": "x"}]}
    patient = {"resourceType": "Patient", "name": [{"given": ["a", "b"], "_given": [ext]}]}
    assert where(errors(validator, patient)) == {("structure", "Patient.name[0].given")}


def test_companion_content_is_validated(validator: ResourceValidator) -> None:
    patient = {
        "resourceType": "Patient",
        "birthDate": "1990-01-01",
        "_birthDate": {"extension": [{"valueString": "x"}], "x": 1},
    }
    assert where(errors(validator, patient)) == {
        ("required", "Patient.birthDate.extension[0].url"),
        ("structure", "Patient.birthDate.x"),
    }


def test_element_id_takes_no_companion(validator: ResourceValidator) -> None:
    patient = {"resourceType": "Patient", "name": [{"id": "n1", "_id": {"extension": []}}]}
    assert where(errors(validator, patient)) == {("structure", "Patient.name[0]._id")}


# --------------------------------------------------------------------------------------- cardinality


def test_required_element_missing(validator: ResourceValidator) -> None:
    assert where(errors(validator, {"resourceType": "Observation", "code": {"text": "x"}})) == {
        ("required", "Observation.status")
    }
    assert where(errors(validator, {"resourceType": "Observation"})) == {
        ("required", "Observation.status"),
        ("required", "Observation.code"),
    }


def test_required_element_inside_backbone_missing(validator: ResourceValidator) -> None:
    patient = {"resourceType": "Patient", "link": [{"type": "seealso"}]}
    assert where(errors(validator, patient)) == {("required", "Patient.link[0].other")}


def test_extension_url_required(validator: ResourceValidator) -> None:
    issues = errors(validator, {"resourceType": "Patient", "extension": [{"valueString": "x"}]})
    assert where(issues) == {("required", "Patient.extension[0].url")}


def test_extension_needs_value_or_nested_extensions_not_both(validator: ResourceValidator) -> None:
    bare = {"resourceType": "Patient", "extension": [{"url": "http://example.org/e"}]}
    assert where(errors(validator, bare)) == {("invariant", "Patient.extension[0]")}
    both = {
        "resourceType": "Patient",
        "extension": [
            {"url": "http://example.org/e", "valueString": "x", "extension": [{"url": "a", "valueCode": "b"}]},
        ],
    }
    assert where(errors(validator, both)) == {("invariant", "Patient.extension[0]")}


def test_extension_value_types_follow_the_extension_definition(validator: ResourceValidator) -> None:
    # R4 allows valueMeta in extensions (R4B does not: the R4B second opinion must not run on it)
    meta_ext = {
        "resourceType": "Patient",
        "extension": [{"url": "http://example.org/m", "valueMeta": {"versionId": "1"}}],
    }
    assert validator.validate(meta_ext) == []
    bad = {"resourceType": "Patient", "extension": [{"url": "http://example.org/m", "valueNarrative": {"status": "x"}}]}
    assert where(errors(validator, bad)) == {("structure", "Patient.extension[0].valueNarrative")}


def test_simple_quantity_forbids_comparator(validator: ResourceValidator) -> None:
    immunization = {
        "resourceType": "Immunization",
        "status": "completed",
        "vaccineCode": {"text": "x"},
        "patient": {"reference": "Patient/1"},
        "occurrenceDateTime": "2020-01-01",
        "doseQuantity": {"value": 5, "comparator": "<", "unit": "mL"},
    }
    assert where(errors(validator, immunization)) == {("structure", "Immunization.doseQuantity.comparator")}


def test_narrative_div_must_be_xhtml_div(validator: ResourceValidator) -> None:
    ok = {
        "resourceType": "Patient",
        "text": {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">x</div>'},
    }
    assert errors(validator, ok) == []
    for div in ("plain text", "", 5):
        bad = {"resourceType": "Patient", "text": {"status": "generated", "div": div}}
        assert where(errors(validator, bad)) == {("value", "Patient.text.div")}


# -------------------------------------------------------------------------------------- required bindings


@pytest.mark.parametrize(
    ("resource", "path"),
    [
        ({"resourceType": "Patient", "gender": "xx"}, "Patient.gender"),
        ({"resourceType": "Observation", "status": "bogus", "code": {"text": "x"}}, "Observation.status"),
        (
            {
                "resourceType": "Encounter",
                "status": "done",
                "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            },
            "Encounter.status",
        ),
        (
            {
                "resourceType": "Appointment",
                "status": "confirmed",
                "participant": [{"status": "accepted", "actor": {"reference": "Patient/1"}}],
            },
            "Appointment.status",
        ),
        (
            {
                "resourceType": "MedicationRequest",
                "status": "active",
                "intent": "wish",
                "medicationCodeableConcept": {"text": "x"},
                "subject": {"reference": "Patient/1"},
            },
            "MedicationRequest.intent",
        ),
        ({"resourceType": "Patient", "telecom": [{"system": "pager-ish", "value": "1"}]}, "Patient.telecom[0].system"),
        ({"resourceType": "Bundle", "type": "pile"}, "Bundle.type"),
    ],
)
def test_required_binding_violation_rejected(validator: ResourceValidator, resource: dict[str, Any], path: str) -> None:
    issues = errors(validator, resource)
    assert where(issues) == {("code-invalid", path)}
    assert "required value set" in issues[0].diagnostics


@pytest.mark.parametrize(
    "resource",
    [
        {"resourceType": "Patient", "gender": "unknown"},
        {
            "resourceType": "Encounter",
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        },
        {
            "resourceType": "Appointment",
            "status": "booked",
            "participant": [{"status": "accepted", "actor": {"reference": "Patient/1"}}],
        },
        {
            "resourceType": "MedicationRequest",
            "status": "active",
            "intent": "reflex-order",
            "medicationCodeableConcept": {"text": "x"},
            "subject": {"reference": "Patient/1"},
        },
        {"resourceType": "Task", "status": "ready", "intent": "unknown"},  # task-intent adds a code to request-intent
        {
            "resourceType": "Composition",
            "status": "final",
            "type": {"text": "x"},
            "date": "2020-01-01",
            "author": [{"display": "x"}],
            "title": "t",
            "confidentiality": "R",
        },  # v3 Confidentiality, nested concept
    ],
)
def test_required_binding_allowed_codes_accepted(validator: ResourceValidator, resource: dict[str, Any]) -> None:
    assert errors(validator, resource) == []


def test_required_binding_on_codeable_concept(validator: ResourceValidator) -> None:
    system = "http://terminology.hl7.org/CodeSystem/condition-clinical"
    condition: dict[str, Any] = {"resourceType": "Condition", "subject": {"reference": "Patient/1"}}
    condition["clinicalStatus"] = {"coding": [{"system": system, "code": "active"}]}
    assert errors(validator, condition) == []
    condition["clinicalStatus"] = {
        "coding": [{"system": "http://example.org/local", "code": "A"}, {"system": system, "code": "cured"}]
    }
    assert where(errors(validator, condition)) == {("code-invalid", "Condition.clinicalStatus.coding[1].code")}


def test_codings_from_other_systems_are_not_judged(validator: ResourceValidator) -> None:
    condition = {
        "resourceType": "Condition",
        "subject": {"reference": "Patient/1"},
        "clinicalStatus": {"coding": [{"system": "http://example.org/local", "code": "A"}]},
    }
    assert errors(validator, condition) == []


def test_binding_inside_datatype_checked(validator: ResourceValidator) -> None:
    issues = errors(validator, observation(valueQuantity={"value": 1, "comparator": "~"}))
    assert where(issues) == {("code-invalid", "Observation.valueQuantity.comparator")}


def test_bindings_to_external_value_sets_are_not_checked(validator: ResourceValidator) -> None:
    # mimetypes (BCP 13) and currencies (ISO 4217) are listed under not_checked in terminology/
    patient = {"resourceType": "Patient", "photo": [{"contentType": "application/x-made-up"}]}
    assert errors(validator, patient) == []
    claim_item = {
        "resourceType": "Coverage",
        "status": "active",
        "beneficiary": {"reference": "Patient/1"},
        "payor": [{"reference": "Organization/1"}],
        "costToBeneficiary": [{"valueMoney": {"value": 10, "currency": "XYZ"}}],
    }
    assert errors(validator, claim_item) == []


# ------------------------------------------------------------------------- fhir.resources second opinion


def test_second_opinion_maps_pydantic_errors_to_fhirpath(validator: ResourceValidator) -> None:
    issues = second_opinion(
        {"resourceType": "Patient", "birthDate": "1990-13-01", "_gender": {"extension": [{"url": "u", "valueFoo": 1}]}}
    )
    assert where(issues) == {("value", "Patient.birthDate"), ("structure", "Patient.gender.extension[0].valueFoo")}


def test_types_without_matching_r4b_model_are_skipped() -> None:
    skipped = set(load_tables().r4b_skip)
    no_r4b_model = {
        t
        for t in R4_RESOURCE_TYPES
        if t.startswith(
            (
                "MedicinalProduct",
                "SubstanceNucleicAcid",
                "SubstancePolymer",
                "SubstanceProtein",
                "SubstanceReferenceInformation",
                "SubstanceSourceMaterial",
                "SubstanceSpecification",
            )
        )
    } | {"EffectEvidenceSynthesis", "RiskEvidenceSynthesis"}
    assert len(no_r4b_model) == 18
    assert no_r4b_model | {"Evidence", "EvidenceVariable"} <= skipped
    assert {"Patient", "Observation", "Bundle", "Claim", "Coverage"}.isdisjoint(skipped)


def test_r4_only_types_still_get_our_checks(validator: ResourceValidator) -> None:
    evidence = {
        "resourceType": "Evidence",
        "status": "draft",
        "exposureBackground": {"reference": "EvidenceVariable/1"},
        "name": "R4-only element",
    }
    assert validator.validate(evidence) == []
    evidence["status"] = "nope"
    assert where(errors(validator, evidence)) == {("code-invalid", "Evidence.status")}


def test_every_r4_resource_type_has_a_table() -> None:
    tables = load_tables()
    assert all(tables.resource(t) is not None for t in R4_RESOURCE_TYPES)


def test_unknown_resource_type_or_non_object_is_an_issue_not_a_crash(validator: ResourceValidator) -> None:
    assert [i.code for i in errors(validator, {"resourceType": "Nope"})] == ["structure"]
    assert [i.code for i in errors(validator, [])] == ["structure"]  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------- the real corpus


def _corpus() -> list[Path]:
    if not SHARED.is_dir():
        return []
    return sorted(
        [
            *SHARED.glob("r4-examples/*.json"),
            *SHARED.glob("synthea/*.json.gz"),
            *SHARED.glob("synthea-conditional/*.json.gz"),
        ]
    )


def _load(path: Path) -> dict[str, Any]:
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    return loads_stored(raw)  # same Decimal-preserving parser as request bodies


def test_the_shared_example_corpus_is_present() -> None:
    """The examples live beside the project (../shared); without them the test below would check nothing."""
    assert len(_corpus()) > 100, f"no official examples under {SHARED}"


@pytest.mark.parametrize("path", _corpus(), ids=lambda p: p.name[:40])
def test_official_examples_and_synthea_resources_are_valid(validator: ResourceValidator, path: Path) -> None:
    document = _load(path)
    # examples (Bundles included) are validated whole; Synthea bundles entry by entry
    resources = [document] if "r4-examples" in path.parts else [entry["resource"] for entry in document["entry"]]
    problems = [f"{i.code} {i.diagnostics}" for r in resources for i in errors(validator, r)]
    assert problems == []
