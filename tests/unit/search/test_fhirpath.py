"""The compiled FHIRPath subset: every official expression on the fast path, FHIR types on every node,
the same selections as fhirpathpy, and the fallback for custom expressions."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fhirpathpy import compile as fhirpathpy_compile
from fhirpathpy.models import models

from fhir_server.search.fhirpath import (
    FhirPathUnsupported,
    Node,
    check_expression,
    compile_expression,
    compile_fast,
    infer_type,
)
from fhir_server.search.registry import SearchRegistry

EXAMPLES = Path(__file__).resolve().parents[4] / "shared" / "fhir" / "r4-examples"


def example(name: str) -> dict[str, Any]:
    resource: dict[str, Any] = json.loads((EXAMPLES / f"{name}.json").read_text(), parse_float=Decimal)
    return resource


def select(expression: str, resource: dict[str, Any], resource_type: str | None = None) -> list[Node]:
    compiled = compile_fast(expression, resource_type)
    return compiled(resource)


def test_every_official_expression_compiles_on_the_fast_path() -> None:
    registry = SearchRegistry.official()
    params = list(registry._by_url.values())  # noqa: SLF001 - the whole official set, not one type's view
    assert len(params) == 1375
    compiled = 0
    for param in params:
        if param.expression is None:
            assert param.code in ("_text", "_content", "_query")
            continue
        assert compile_fast(param.expression).fast, param.url
        for base in param.base:  # and specialised for each type it serves
            compile_fast(param.expression, base)
        for _, expression in param.components:
            compile_fast(expression)
        compiled += 1
    assert compiled == 1372


def test_fast_path_selects_what_fhirpathpy_selects_on_the_official_examples() -> None:
    """Cross-check against the reference engine on every applicable parameter of every example.
    Left out: `resolve()` (fhirpathpy cannot), `Resource.*` (fhirpathpy does not treat Patient as a
    Resource) and expressions fhirpathpy refuses (`as` on a collection). Unions compare as sets."""
    registry = SearchRegistry.official()
    reference: dict[str, Any] = {}
    checked = 0
    for path in sorted(EXAMPLES.glob("*.json")):
        resource = json.loads(path.read_text(), parse_float=Decimal)
        resource_type = resource["resourceType"]
        for code, param in registry.for_type(resource_type).items():
            expression = param.expression
            if not expression or "resolve()" in expression or expression.startswith("Resource."):
                continue
            if expression not in reference:
                reference[expression] = fhirpathpy_compile(expression, model=models["r4"])
            try:
                expected = reference[expression](resource, {})
            except Exception:  # noqa: BLE001 - fhirpathpy's strictness, not ours
                continue
            found = select(expression, resource, resource_type)
            assert {canonical(n.value) for n in found} == {canonical(v) for v in expected}, (path.name, code)
            checked += 1
    assert checked > 5000


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def test_nodes_carry_fhir_types() -> None:
    observation = example("Observation-blood-pressure")
    assert {n.fhir_type for n in select("Observation.code", observation)} == {"CodeableConcept"}
    assert {n.fhir_type for n in select("Observation.component", observation)} == {"Observation.component"}
    assert {n.fhir_type for n in select("Observation.component.value", observation)} == {"Quantity"}
    assert {n.fhir_type for n in select("Observation.effective", observation)} == {"dateTime"}
    assert [n.fhir_type for n in select("Observation.status", observation)] == ["code"]
    patient = example("Patient-example")
    assert {n.fhir_type for n in select("Patient.name", patient)} == {"HumanName"}
    assert {n.fhir_type for n in select("Patient.name.given", patient)} == {"string"}
    assert [n.fhir_type for n in select("Patient.birthDate", patient)] == ["date"]
    assert [n.fhir_type for n in select("Patient.active", patient)] == ["boolean"]


def test_repeating_elements_flatten_at_every_step() -> None:
    patient = example("Patient-example")
    given = [n.value for n in select("Patient.name.given", patient)]
    assert given == ["Peter", "James", "Jim", "Peter", "James"]


def test_union_keeps_only_branches_for_the_resource_type() -> None:
    patient = example("Patient-example")
    expression = "Practitioner.name.family | Patient.name.family | Person.name.family"
    assert [n.value for n in select(expression, patient, "Patient")] == ["Chalmers", "Windsor"]
    assert [n.value for n in select(expression, patient)] == ["Chalmers", "Windsor"]  # also at run time
    assert select("Practitioner.name", patient, "Patient") == []


def test_resource_and_domain_resource_heads_match_any_resource() -> None:
    patient = {"resourceType": "Patient", "id": "p", "meta": {"tag": [{"code": "a"}]}}
    assert [n.value for n in select("Resource.id", patient, "Patient")] == ["p"]
    assert [n.fhir_type for n in select("Resource.meta.tag", patient)] == ["Coding"]
    assert select("DomainResource.id", {"resourceType": "Bundle", "id": "b"}, "Bundle") == []


def test_as_operator_and_function_select_one_choice_type() -> None:
    observation = example("Observation-example")
    quantity = select("(Observation.value as Quantity)", observation)
    assert [n.fhir_type for n in quantity] == ["Quantity"] and quantity[0].value["value"] == 185
    assert select("Observation.value.as(CodeableConcept)", observation) == []
    assert select("(Observation.value as CodeableConcept).text", observation) == []
    condition = {"resourceType": "Condition", "onsetAge": {"value": 52, "unit": "a"}}
    assert [n.fhir_type for n in select("Condition.onset.as(Age) | Condition.onset.as(Range)", condition)] == ["Age"]
    assert [n.fhir_type for n in select("Condition.onset.as(Quantity)", condition)] == ["Age"]  # Age is a Quantity
    dated = {"resourceType": "Observation", "valueDateTime": "2024-01-02"}
    assert [n.value for n in select("value.as(DateTime)", dated)] == ["2024-01-02"]  # System type name


def test_where_resolve_is_keeps_references_to_that_type() -> None:
    appointment = example("Appointment-example")
    patients = select("Appointment.participant.actor.where(resolve() is Patient)", appointment, "Appointment")
    assert [n.value["reference"] for n in patients] == ["Patient/example"]
    references = {"resourceType": "Observation", "performer": [
        {"reference": "Patient/1"}, {"reference": "http://other.example/fhir/Patient/2"},
        {"reference": "https://x.example/fhir/Patient/3/_history/4"}, {"reference": "Practitioner/5"},
        {"reference": "#contained"}, {"reference": "urn:uuid:0f8c7a0e-1111-2222-3333-444455556666"},
        {"type": "Patient", "identifier": {"value": "6"}}, {"display": "no reference"},
    ]}
    found = select("Observation.performer.where(resolve() is Patient)", references)
    assert [n.value.get("reference", "type:Patient") for n in found] == [
        "Patient/1", "http://other.example/fhir/Patient/2", "https://x.example/fhir/Patient/3/_history/4",
        "type:Patient"]


def test_where_on_a_field_value() -> None:
    patient = example("Patient-example")
    phones = select("Patient.telecom.where(system='phone')", patient)
    assert len(phones) == 3 and all(n.fhir_type == "ContactPoint" for n in phones)
    assert select("Patient.telecom.where(system='email')", patient) == []


def test_indexer_picks_one_element() -> None:
    bundle = {"resourceType": "Bundle", "entry": [
        {"resource": {"resourceType": "Composition", "id": "c"}}, {"resource": {"resourceType": "Patient"}}]}
    found = select("Bundle.entry[0].resource", bundle, "Bundle")
    assert [(n.value["id"], n.fhir_type) for n in found] == [("c", "Composition")]
    assert select("Bundle.entry[5].resource", bundle) == []


def test_deceased_is_a_boolean_with_fhirpath_logic() -> None:
    expression = "Patient.deceased.exists() and Patient.deceased != false"
    cases: list[tuple[dict[str, Any], bool]] = [
        ({}, False), ({"deceasedBoolean": False}, False), ({"deceasedBoolean": True}, True),
        ({"deceasedDateTime": "2015-02-14"}, True)]
    for extra, expected in cases:
        assert select(expression, {"resourceType": "Patient", **extra}) == [Node(expected, "boolean")], extra


def test_extension_by_url() -> None:
    patient = {"resourceType": "Patient", "extension": [
        {"url": "http://clinic.example/route", "valueString": "north"},
        {"url": "http://clinic.example/other", "valueCode": "x"},
        {"url": "http://clinic.example/route", "valueCodeableConcept": {"text": "south"}},
    ]}
    found = select("Patient.extension('http://clinic.example/route').value", patient)
    assert [(n.value, n.fhir_type) for n in found] == [("north", "string"), ({"text": "south"}, "CodeableConcept")]
    same = select("Patient.extension.where(url = 'http://clinic.example/route').value.as(string)", patient)
    assert [n.value for n in same] == ["north"]


def test_bare_type_name_selects_the_resource() -> None:
    observation = example("Observation-example")
    assert select("Observation", observation) == [Node(observation, "Observation")]
    assert select("Observation", observation, "Patient") == []


def test_relative_component_expressions_evaluate_on_any_node() -> None:
    observation = example("Observation-blood-pressure")
    root = Node(observation, "Observation")
    components = compile_fast("Observation | Observation.component", "Observation").evaluate([root], root)
    code = compile_fast("code")
    value = compile_fast("value.as(Quantity)")
    assert [len(code.evaluate([node], root)) for node in components] == [1, 1, 1]
    assert [len(value.evaluate([node], root)) for node in components] == [0, 1, 1]
    sequence = {"resourceType": "MolecularSequence", "referenceSeq": {"chromosome": {"text": "1"}},
                "variant": [{"start": 1}]}
    seq_root = Node(sequence, "MolecularSequence")
    chromosome = compile_fast("%resource.referenceSeq.chromosome")
    variant = compile_fast("MolecularSequence.variant", "MolecularSequence").evaluate([seq_root], seq_root)
    assert [n.fhir_type for n in chromosome.evaluate(variant, seq_root)] == ["CodeableConcept"]


def test_contained_resources_are_typed_by_their_resource_type() -> None:
    request = example("MedicationRequest-medrx0301")
    assert [n.fhir_type for n in select("MedicationRequest.contained", request)] == ["Medication", "Provenance"]
    codes = select("MedicationRequest.contained.code", request)
    assert codes and {n.fhir_type for n in codes} == {"CodeableConcept"}


def test_types_the_tables_do_not_know_are_guessed_from_the_json() -> None:
    route = {"resourceType": "Route", "stop": [{"location": {"reference": "Location/1"}, "at": "2024-05-01"}]}
    found = compile_expression("Route.stop.location | Route.stop.at")(route)
    assert [(n.value, n.fhir_type) for n in found] == [
        ({"reference": "Location/1"}, "Reference"), ("2024-05-01", "date")]


def test_outside_the_subset_falls_back_to_fhirpathpy() -> None:
    with pytest.raises(FhirPathUnsupported):
        compile_fast("Patient.name.given.first() + 'x'")
    compiled = compile_expression("Patient.name.given.first() + ' (given)'")
    assert not compiled.fast
    assert compiled(example("Patient-example")) == [Node("Peter (given)", "string")]
    counted = compile_expression("Patient.name.given.count()")
    assert counted(example("Patient-example")) == [Node(5, "integer")]


def test_syntax_errors_are_refused_once_not_per_resource() -> None:
    for expression in ("Patient.name.where(", "Patient..name", "(((", "Patient.name ) x"):
        assert not check_expression(expression), expression
        with pytest.raises(FhirPathUnsupported):
            compile_expression(expression)
    assert check_expression("Patient.name.given.count() > 1")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, "boolean"), (3, "integer"), (Decimal("1.5"), "decimal"), ("2024-01", "date"),
        ("2024-01-02T10:00:00Z", "dateTime"), ("http://x.example", "uri"), ("hello", "string"),
        ({"coding": []}, "CodeableConcept"), ({"reference": "Patient/1"}, "Reference"),
        ({"value": 1, "unit": "mg"}, "Quantity"), ({"value": 1, "currency": "ZAR"}, "Money"),
        ({"start": "2024"}, "Period"), ({"low": {"value": 1}}, "Range"), ({"family": "x"}, "HumanName"),
        ({"city": "Pretoria"}, "Address"), ({"system": "phone", "value": "1"}, "ContactPoint"),
        ({"system": "urn:oid:1", "value": "1"}, "Identifier"), ({"system": "s", "code": "c"}, "Coding"),
        ({"resourceType": "Patient"}, "Patient"), ({"event": ["2024"]}, "Timing"), ([], ""),
    ],
)
def test_infer_type(value: Any, expected: str) -> None:
    assert infer_type(value) == expected
