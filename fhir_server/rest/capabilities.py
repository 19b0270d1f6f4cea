"""capabilities: `GET [base]/metadata` (http.html#capabilities).

Generated from what is wired: the type registry, the interactions the router serves, the versioning and
conditional behaviour of the write pipeline, and the configured delete semantics. Built once per app and
served as bytes.
"""

from __future__ import annotations

from typing import Any

from fhir_server import __version__
from fhir_server.config import Settings
from fhir_server.auth import urls
from fhir_server.model.registry import ResourceRegistry
from fhir_server.rest.negotiate import FHIR_JSON, JSON_PATCH
from fhir_server.search.registry import SearchRegistry

REINDEX = "urn:fhir-server:OperationDefinition:reindex"

TYPE_INTERACTIONS = ("read", "vread", "update", "patch", "delete", "history-instance", "history-type", "create",
                     "search-type")
SYSTEM_INTERACTIONS = ("transaction", "batch", "history-system", "search-system")
EVERYTHING = {"Patient": "http://hl7.org/fhir/OperationDefinition/Patient-everything",
              "Encounter": "http://hl7.org/fhir/OperationDefinition/Encounter-everything"}
EXPORT = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export"
PATIENT_EXPORT = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export"
GROUP_EXPORT = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export"
COMMON_RESULT_PARAMS = ("_sort", "_count", "_total", "_summary", "_elements", "_include", "_revinclude")


def _search_params(search: SearchRegistry, resource_type: str) -> list[dict[str, Any]]:
    params = []
    for code, param in sorted(search.for_type(resource_type).items()):
        if param.type == "special":
            continue  # not supported: never advertised
        entry = {"name": code, "definition": param.url, "type": param.type}
        params.append(entry)
    return params


def _type_operations(resource_type: str) -> list[dict[str, str]]:
    operations = [{"name": "reindex", "definition": REINDEX}]
    if resource_type in EVERYTHING:
        operations.append({"name": "everything", "definition": EVERYTHING[resource_type]})
    if resource_type == "Patient":
        operations.append({"name": "export", "definition": PATIENT_EXPORT})
    if resource_type == "Group":
        operations.append({"name": "export", "definition": GROUP_EXPORT})
    return operations


def _includes(search: SearchRegistry, resource_type: str) -> list[str]:
    return ["*"] + [f"{resource_type}:{code}" for code, p in sorted(search.for_type(resource_type).items())
                    if p.type == "reference"]


def _security(base_url: str) -> dict[str, Any]:
    """SMART's declaration in the CapabilityStatement (app-launch 2.x: the .well-known document is the
    primary one; the oauth-uris extension is kept for clients written against SMART 1)."""
    endpoints = ("authorize", "token", "introspect", "revoke")
    return {
        "cors": True,
        "service": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                                 "code": "SMART-on-FHIR"}], "text": "OAuth2 using SMART-on-FHIR profile"}],
        "extension": [{"url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                       "extension": [{"url": name, "valueUri": urls.auth_url(base_url, name)} for name in endpoints]}],
        "description": "Every request needs a SMART access token; see .well-known/smart-configuration",
    }


def capability_statement(settings: Settings, registry: ResourceRegistry, search: SearchRegistry, base_url: str,
                         date: str) -> dict[str, Any]:
    resources = []
    revincludes: dict[str, list[str]] = {}
    for resource_type in registry.sorted():
        for code, param in search.for_type(resource_type).items():
            if param.type == "reference":
                for target in param.targets:
                    revincludes.setdefault(target, []).append(f"{resource_type}:{code}")
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
            "searchInclude": _includes(search, resource_type),
            "searchRevInclude": sorted(revincludes.get(resource_type, [])),
            "searchParam": _search_params(search, resource_type),
            "operation": _type_operations(resource_type),
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
                f"{settings.delete_missing_status}. Conditional create, update and delete accept any "
                "search. Search supports every R4 SearchParameter except the special ones (near, _text, "
                "_content, _query); see docs/search.md. Bulk $export writes application/fhir+ndjson."
            ),
            **({"security": _security(base_url)} if settings.auth == "on" else {}),
            "resource": resources,
            "interaction": [{"code": code} for code in SYSTEM_INTERACTIONS],
            "searchParam": _search_params(search, "Resource"),
            "operation": [{"name": "reindex", "definition": REINDEX}, {"name": "export", "definition": EXPORT}],
        }],
    }
