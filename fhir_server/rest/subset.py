"""`_summary` and `_elements` on returned resources (search.html#summary, #elements).

Subsetting works on top-level elements, as the spec's examples do; a subsetted resource is marked with the
`SUBSETTED` tag from http://terminology.hl7.org/CodeSystem/v3-ObservationValue so no client mistakes it for
the whole resource.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from fhir_server import errors, fhirjson

SUBSETTED = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED",
             "display": "subsetted"}
_ALWAYS = {"resourceType", "id", "meta"}
SUMMARY_VALUES = ("true", "false", "text", "data", "count")
MAX_ELEMENTS = 100


@cache
def _table() -> dict[str, dict[str, list[str]]]:
    text = resources.files("fhir_server.model").joinpath("data/summary.json").read_text()
    table: dict[str, dict[str, list[str]]] = json.loads(text)
    return table


def _matches(key: str, names: set[str]) -> bool:
    """Does JSON key `key` (e.g. `valueQuantity`, `_birthDate`) belong to one of the element `names`?"""
    key = key[1:] if key.startswith("_") else key
    if key in names:
        return True
    return any(n.endswith("[x]") and key.startswith(n[:-3]) and key[len(n) - 3:][:1].isupper() for n in names)


@dataclass(frozen=True)
class Subset:
    """What part of each resource to return; `None` values mean the whole resource."""

    summary: str | None = None
    elements: tuple[str, ...] | None = None

    @property
    def active(self) -> bool:
        return (self.summary not in (None, "false")) or self.elements is not None

    def apply(self, raw: bytes) -> bytes | dict[str, Any]:
        if not self.active:
            return raw
        resource = fhirjson.loads_stored(raw)
        kept = self.keep(resource)
        meta = dict(kept.get("meta") or {})
        meta["tag"] = [*meta.get("tag", []), SUBSETTED]
        kept["meta"] = meta
        return kept

    def keep(self, resource: dict[str, Any]) -> dict[str, Any]:
        info = _table().get(resource["resourceType"], {"summary": [], "mandatory": []})
        mandatory = set(info["mandatory"])
        if self.summary == "text":
            names = {"text"} | mandatory
        elif self.summary == "data":
            return {k: v for k, v in resource.items() if k != "text"}
        elif self.summary == "true":
            names = set(info["summary"]) | mandatory
        else:
            names = set(self.elements or ()) | mandatory
        return {k: v for k, v in resource.items() if k in _ALWAYS or _matches(k, names)}


def parse_subset(summary: str | None, elements: str | None) -> Subset:
    """Raises 400 for an unknown `_summary` value or an oversized `_elements` list."""
    if summary is not None and summary not in SUMMARY_VALUES:
        raise errors.invalid(f"_summary={summary} is not one of {', '.join(SUMMARY_VALUES)}", "_summary")
    names: tuple[str, ...] | None = None
    if elements is not None:
        names = tuple(n.strip() for n in elements.split(",") if n.strip())
        if len(names) > MAX_ELEMENTS:
            raise errors.invalid(f"_elements lists {len(names)} elements; at most {MAX_ELEMENTS} are allowed")
        names = tuple(n.split(".", 1)[1] if "." in n else n for n in names)  # `Patient.name` -> `name`
    if summary is not None and summary != "false" and names is not None:
        raise errors.invalid("_summary and _elements cannot be used together", "_elements")
    return Subset(summary, names)
