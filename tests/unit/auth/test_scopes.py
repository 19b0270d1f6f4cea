"""The SMART scope grammar and the one narrowing rule used at grant time and on every request."""

from __future__ import annotations

import pytest

from fhir_server.auth import roles
from fhir_server.auth.scopes import ResourceScope, narrow, parse_resource_scope


@pytest.mark.parametrize("text, expected", [
    ("patient/Observation.read", ResourceScope("patient", "Observation", "rs", (), True)),
    ("user/*.write", ResourceScope("user", "*", "cud", (), True)),
    ("system/*.*", ResourceScope("system", "*", "cruds", (), True)),
    ("patient/Observation.rs", ResourceScope("patient", "Observation", "rs")),
    ("user/Patient.cruds", ResourceScope("user", "Patient", "cruds")),
    ("patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|vital-signs",
     ResourceScope("patient", "Observation", "rs",
                   (("category", "http://terminology.hl7.org/CodeSystem/observation-category|vital-signs"),))),
    ("patient/Observation.s?code=a+b&status=final", ResourceScope("patient", "Observation", "s",
                                                                 (("code", "a+b"), ("status", "final")))),
])
def test_well_formed_scopes_parse(text: str, expected: ResourceScope) -> None:
    assert parse_resource_scope(text) == expected


@pytest.mark.parametrize("text", [
    "patient/Observation.dus",  # v2 letters out of order
    "patient/Observation.rr",
    "patient/Observation.read?category=x",  # v1 permission with a query
    "clinic/Observation.rs", "patient/observation.rs", "patient/Observation", "patient/Observation.",
    "patient/Observation.rs?", "patient/Observation.rs?category", "patient/Observation.rs?=x",
    "launch/patient", "openid", "patient/" + "A" * 600 + ".rs",
])
def test_malformed_or_non_resource_scopes_do_not_parse(text: str) -> None:
    assert parse_resource_scope(text) is None


def test_v1_scopes_are_echoed_as_asked() -> None:
    assert narrow(["patient/*.read"], ["patient/*.cruds"]) == ["patient/*.read"]
    assert narrow(["patient/*.*"], ["patient/*.rs"]) == ["patient/*.rs"]  # cut: v1 form no longer exact


def test_narrowing_never_widens_and_drops_what_no_ceiling_names() -> None:
    got = narrow(["user/*.cruds", "launch/patient", "openid", "bogus", "system/*.rs"], ["user/*.rs", "launch/patient"])
    assert got == ["launch/patient", "user/*.rs"]


def test_a_user_ceiling_bounds_patient_scopes_but_not_system_ones() -> None:
    assert narrow(["patient/Observation.rs"], ["user/*.rs"]) == ["patient/Observation.rs"]
    assert narrow(["system/Observation.rs"], ["user/*.rs"]) == []
    assert narrow(["user/Observation.rs"], ["patient/*.rs"]) == []


def test_wildcards_split_into_the_ceilings_types() -> None:
    got = narrow(["user/*.cruds"], roles.ceiling("finance"))
    assert "user/Claim.cruds" in got and "user/Patient.rs" in got
    assert not any(s.startswith("user/Observation") for s in got)


def test_constraints_survive_and_conflicting_constraints_meet_in_nothing() -> None:
    vitals = "patient/Observation.rs?category=vital-signs"
    assert narrow([vitals], ["patient/*.rs"]) == [vitals]
    assert narrow(["patient/Observation.rs"], [vitals]) == [vitals]
    assert narrow(["patient/Observation.rs?category=laboratory"], [vitals]) == []


def test_unknown_roles_hold_nothing() -> None:
    assert roles.ceiling("janitor") == []
    assert narrow(["user/*.rs"], roles.ceiling("janitor")) == []
