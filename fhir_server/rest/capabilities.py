"""capabilities: `GET [base]/metadata` (http.html#capabilities).

Generated from what is wired: the type registry, the interactions the router serves, the versioning and
conditional behaviour of the write pipeline, and the configured delete semantics. Built once per app and
served as bytes.
"""

from __future__ import annotations

from typing import Any

from fhir_server import __version__
from fhir_server.config import Settings
from fhir_server.model.registry import ResourceRegistry
from fhir_server.rest.negotiate import FHIR_JSON, JSON_PATCH

TYPE_INTERACTIONS = ("read", "vread", "update", "patch", "delete", "history-instance", "history-type", "create")
SYSTEM_INTERACTIONS = ("history-system",)


def capability_statement(settings: Settings, registry: ResourceRegistry, base_url: str, date: str) -> dict[str, Any]:
    resources = []
    for resource_type in registry.sorted():
        entry: dict[str, Any] = {
            "type": resource_type,
            "profile": f"http://hl7.org/fhir/StructureDefinition/{resource_type}",
            "interaction": [{"code": code} for code in TYPE_INTERACTIONS],
            "versioning": "versioned-update",
            "readHistory": True,
            "updateCreate": True,
            "conditionalCreate": True,
            "conditionalRead": "full-support",
            "conditionalUpdate": True,
            "conditionalDelete": "single",
        }
        if resource_type in registry.custom:
            entry["documentation"] = registry.custom[resource_type]
        resources.append(entry)
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": date,
        "publisher": "POLMED mobile-clinic programme",
        "kind": "instance",
        "software": {"name": "fhir-server", "version": __version__},
        "implementation": {"description": "FHIR R4 server on MongoDB for the POLMED mobile clinics", "url": base_url},
        "fhirVersion": "4.0.1",
        "format": [FHIR_JSON, "application/json"],
        "patchFormat": [JSON_PATCH],
        "rest": [{
            "mode": "server",
            "documentation": (
                "Deleting a resource that does not exist answers "
                f"{settings.delete_missing_status}. Conditional create, update and delete accept the "
                "_id and identifier parameters."
            ),
            "resource": resources,
            "interaction": [{"code": code} for code in SYSTEM_INTERACTIONS],
        }],
    }
