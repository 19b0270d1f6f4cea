"""Staff roles of the clinic's old system, each mapped to the widest `user/` scopes it may ever hold.

A token's `user/` scopes are intersected with its user's role on every request (auth/scopes.narrow), so
changing a role here or demoting a user takes effect at once, without revoking tokens. `patient` is the
portal role: its `user/` scopes are further confined to the linked Patient's compartment (auth/access.py).
"""

from __future__ import annotations

CLINICAL = ("Patient", "Encounter", "EpisodeOfCare", "Observation", "Condition", "AllergyIntolerance",
            "Procedure", "Immunization", "DiagnosticReport", "ServiceRequest", "MedicationRequest",
            "MedicationStatement", "MedicationAdministration", "MedicationDispense", "CarePlan", "CareTeam",
            "ClinicalImpression", "FamilyMemberHistory", "DocumentReference", "QuestionnaireResponse",
            "Specimen", "Flag", "Goal", "RiskAssessment", "Communication", "Consent", "RelatedPerson")
SCHEDULING = ("Appointment", "AppointmentResponse", "Schedule", "Slot")
INVENTORY = ("Medication", "Device", "SupplyRequest", "SupplyDelivery", "Substance", "Location")
FINANCE = ("Coverage", "CoverageEligibilityRequest", "CoverageEligibilityResponse", "Claim", "ClaimResponse",
           "ExplanationOfBenefit", "Account", "ChargeItem", "Invoice", "PaymentNotice", "PaymentReconciliation")
DIRECTORY = ("Practitioner", "PractitionerRole", "Organization", "Location", "HealthcareService", "Endpoint")


def _all(level_types: tuple[str, ...], letters: str) -> list[str]:
    return [f"user/{t}.{letters}" for t in level_types]


ROLES: dict[str, list[str]] = {
    "administrator": ["user/*.cruds"],
    "doctor": ["user/*.rs", *_all(CLINICAL + SCHEDULING, "cud")],
    "nurse": ["user/*.rs", *_all(tuple(t for t in CLINICAL if t != "MedicationRequest") + SCHEDULING, "cud")],
    "clerk": [*_all(("Patient", "RelatedPerson", "Coverage") + SCHEDULING, "cruds"),
              *_all(("Encounter",), "crus"), *_all(DIRECTORY, "rs")],
    "social worker": [*_all(("Patient", "RelatedPerson", "Encounter", "Condition", "Observation") + SCHEDULING, "rs"),
                      *_all(("CarePlan", "Communication", "Consent", "Goal"), "cruds"), *_all(DIRECTORY, "rs")],
    "inventory manager": [*_all(INVENTORY + ("MedicationDispense",), "cruds"), *_all(DIRECTORY, "rs")],
    "finance": [*_all(FINANCE, "cruds"), *_all(("Patient", "Encounter") + DIRECTORY, "rs")],
    "viewer": ["user/*.rs"],
    "patient": ["user/*.rs"],
}

STAFF_ROLES = tuple(r for r in ROLES if r != "patient")


def ceiling(role: str) -> list[str]:
    """The widest scopes `role` may hold; an unknown role holds none (fail closed)."""
    return ROLES.get(role, [])
