"""The access decision: which resources of a type a caller may touch with one SMART permission letter.

Pure policy, no I/O. A decision is a `Restriction`: a union of clauses, each a Patient compartment the
resource must be in (or none) and v2 query constraints it must match (or none). rest/guard.py turns it
into a MongoDB filter with the same search code that serves `?param=value`, so "what a scope allows" and
"what a search for it returns" can never disagree.

Rules (docs/access-control.md):
- `system/` scopes: no compartment. `user/` scopes: no compartment for staff; a portal user (role
  `patient`) is confined to their own Patient's compartment. `patient/` scopes: confined to the launch
  context patient; without one they allow nothing.
- Types outside the Patient compartment are of two kinds. Shared reference data (`SHARED_TYPES`: the
  directory, catalogues, definitions, terminology, Slot): a compartment-confined scope may read and search
  them, never write them. The rest can carry a patient's data without the compartment saying whose
  (Binary, Bundle, Task, Device, MessageHeader, PaymentNotice …): a compartment-confined scope gets none of
  them (fail closed).
"""

from __future__ import annotations

from dataclasses import dataclass

from fhir_server.context import Caller
from fhir_server.search.registry import patient_compartment_params

LETTERS = {"create": "c", "read": "r", "update": "u", "delete": "d", "search": "s"}
SHARED_TYPES = frozenset({
    # who and where: the directory
    "Practitioner", "PractitionerRole", "Organization", "OrganizationAffiliation", "Location",
    "HealthcareService", "Endpoint", "InsurancePlan", "Slot",
    # what: products and catalogues
    "Medication", "MedicationKnowledge", "Substance", "SubstanceNucleicAcid", "SubstancePolymer",
    "SubstanceProtein", "SubstanceReferenceInformation", "SubstanceSourceMaterial", "SubstanceSpecification",
    "DeviceDefinition", "CatalogEntry", "ChargeItemDefinition", "ObservationDefinition", "SpecimenDefinition",
    "MedicinalProduct", "MedicinalProductAuthorization", "MedicinalProductContraindication",
    "MedicinalProductIndication", "MedicinalProductIngredient", "MedicinalProductInteraction",
    "MedicinalProductManufactured", "MedicinalProductPackaged", "MedicinalProductPharmaceutical",
    "MedicinalProductUndesirableEffect",
    # how: definitions, knowledge, conformance and terminology
    "ActivityDefinition", "PlanDefinition", "EventDefinition", "Library", "Measure", "Questionnaire",
    "ResearchDefinition", "ResearchElementDefinition", "ResearchStudy", "Evidence", "EvidenceVariable",
    "EffectEvidenceSynthesis", "RiskEvidenceSynthesis", "ExampleScenario", "GraphDefinition",
    "MessageDefinition", "CapabilityStatement", "CompartmentDefinition", "ImplementationGuide",
    "OperationDefinition", "SearchParameter", "StructureDefinition", "StructureMap", "TerminologyCapabilities",
    "TestScript", "CodeSystem", "ValueSet", "ConceptMap", "NamingSystem",
})


@dataclass(frozen=True)
class Clause:
    compartment: str | None  # "Patient/<id>" the resource must belong to
    constraints: tuple[tuple[str, str], ...] = ()

    @property
    def open(self) -> bool:
        return self.compartment is None and not self.constraints


@dataclass(frozen=True)
class Restriction:
    clauses: tuple[Clause, ...]

    @property
    def allowed(self) -> bool:
        """Some resources of the type may be touched at all."""
        return bool(self.clauses)

    @property
    def unrestricted(self) -> bool:
        return any(c.open for c in self.clauses)

    @property
    def compartments(self) -> set[str | None]:
        return {c.compartment for c in self.clauses}


EVERYTHING = Restriction((Clause(None),))
NOTHING = Restriction(())


def in_patient_compartment(resource_type: str) -> bool:
    return resource_type == "Patient" or bool(patient_compartment_params(resource_type))


def restriction(caller: Caller, resource_type: str, letter: str) -> Restriction:
    if caller.unrestricted:
        return EVERYTHING
    clauses: dict[Clause, None] = {}
    for scope in caller.scopes:
        if not scope.allows(resource_type, letter):
            continue
        compartment: str | None = None
        if scope.level == "patient":
            if caller.patient is None:
                continue
            compartment = f"Patient/{caller.patient}"
        elif scope.level == "user" and caller.role == "patient":
            if caller.own_patient is None:
                continue
            compartment = f"Patient/{caller.own_patient}"
        if compartment is not None and not in_patient_compartment(resource_type):
            if letter not in "rs" or resource_type not in SHARED_TYPES:
                continue
            compartment = None
        clause = Clause(compartment, scope.constraints)
        if clause.open:
            return EVERYTHING
        clauses.setdefault(clause, None)
    return Restriction(tuple(clauses))


def may_export(caller: Caller, level: str, group_user_scopes: bool) -> bool:
    """Bulk export reads whole populations: `system/` scopes (and `user/` ones for Group export when the
    server is configured so). Per-type read rights are checked afterwards like any read."""
    if caller.unrestricted:
        return True
    levels = {"system"} | ({"user"} if group_user_scopes and level == "group" else set())
    return caller.role != "patient" and any(s.level in levels for s in caller.scopes)


def _full(caller: Caller, level: str) -> bool:
    return any(s.level == level and s.resource_type == "*" and s.letters == "cruds" and not s.constraints
               for s in caller.scopes)


def is_administrator_user(caller: Caller) -> bool:
    """A signed-in administrator whose token grants everything: a narrow app an administrator signed into
    cannot manage accounts."""
    return caller.unrestricted or (caller.role == "administrator" and _full(caller, "user"))


def is_administrator(caller: Caller) -> bool:
    """For server maintenance ($reindex): an administrator user, or a back-end service granted system/*.cruds."""
    return is_administrator_user(caller) or _full(caller, "system")
