"""Extraction at write time: a resource's search values, encoded as docs/search.md describes.

Why at write time: a search then becomes index lookups on precomputed, normalised values instead of
evaluating FHIRPath over every stored resource. Each type gets a *plan* (one compiled expression and one
encoder per parameter), built on first use and rebuilt when the registry's version changes, so a write
pays only for walking the JSON.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from fhir_server.search.fhirpath import Compiled, FhirPathUnsupported, Node, compile_expression
from fhir_server.search.index import composite, date, number, quantity, reference, string, token, uri
from fhir_server.search.index.encode import Encoded
from fhir_server.search.registry import SearchParam, SearchRegistry, patient_compartment_params

Encoder = Callable[[list[Node]], Encoded | None]
# (code, compiled expression, encoder; for a composite the encoder is None and the components are given)
Step = tuple[str, Compiled, Encoder | None, tuple[composite.Component, ...]]

# Held by the store itself: `_id` is the document id, `_lastUpdated` is `ts`.
NOT_EXTRACTED = frozenset({"_id", "_lastUpdated"})
SECTIONS = ("ix", "ixp", "ex", "tx", "ot", "ri", "sk")


class Extractor:
    """Extracts search values for one registry (custom parameters included)."""

    def __init__(self, registry: SearchRegistry, server_bases: tuple[str, ...] = ()) -> None:
        self.registry = registry
        self.server_bases = tuple(base.rstrip("/") for base in server_bases)
        self._plans: dict[str, list[Step]] = {}
        self._version = registry.version()
        self._encoders: dict[str, Encoder] = {
            "string": string.values,
            "token": token.values,
            "reference": partial(reference.values, server_bases=self.server_bases),
            "date": date.values,
            "number": number.values,
            "quantity": quantity.values,
            "uri": uri.values,
        }

    def extract(self, resource_type: str, resource: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """`{"ix": {code: [...]}, "ixp": ..., "ex": ..., "tx": ..., "ot": ..., "ri": ..., "sk": {code: value},
        "pc": ["Patient/<id>", ...]}`, with empty sections omitted. Never raises for odd data: values that do not encode are skipped."""
        root = Node(resource, resource_type)
        focus = [root]
        ix: dict[str, Any] = {}
        sk: dict[str, Any] = {}
        extra: dict[str, dict[str, Any]] = {}
        memo: dict[tuple[int, str, object], Encoded | None] = {}
        for code, expression, encode, components in self._plan(resource_type):
            nodes = expression.evaluate(focus, root)
            if not nodes:
                continue
            encoded = encode(nodes) if encode is not None else composite.values(nodes, root, components, memo)
            if encoded is None:
                continue
            if encoded.ix:
                ix[code] = encoded.ix
            if encoded.sk is not None:
                sk[code] = encoded.sk
            for section, found in encoded.extra.items():
                if found:
                    extra.setdefault(section, {})[code] = found
        out: dict[str, dict[str, Any]] = {}
        if ix:
            out["ix"] = ix
        for section in SECTIONS[1:-1]:
            if section in extra:
                out[section] = extra[section]
        if sk:
            out["sk"] = sk
        members = _patient_compartments(resource_type, resource, ix)
        if members:
            out["pc"] = members  # type: ignore[assignment]  # a list: one index serves compartment search
        return out

    def _plan(self, resource_type: str) -> list[Step]:
        version = self.registry.version()
        if version != self._version:
            self._plans.clear()
            self._version = version
        plan = self._plans.get(resource_type)
        if plan is None:
            plan = self._plans[resource_type] = self._build(resource_type)
        return plan

    def _build(self, resource_type: str) -> list[Step]:
        plan: list[Step] = []
        for code, param in self.registry.for_type(resource_type).items():
            if code in NOT_EXTRACTED or not param.expression or param.type == "special":
                continue
            compiled = _compile(param.expression, resource_type)
            if compiled is None:
                continue
            if param.type == "composite":
                components = self._components(param)
                if components:
                    plan.append((code, compiled, None, components))
            elif param.type in self._encoders:
                plan.append((code, compiled, self._encoders[param.type], ()))
        return plan

    def _components(self, param: SearchParam) -> tuple[composite.Component, ...]:
        """Each component's expression (relative to the composite's element) and its type's encoder; empty
        when one cannot be encoded (unknown definition, nested composite): the composite is then not indexed."""
        components: list[composite.Component] = []
        for definition, expression in param.components:
            target = self.registry.by_url(definition)
            encoder = self._encoders.get(target.type) if target is not None else None
            compiled = _compile(expression, None)
            if encoder is None or compiled is None:
                return ()
            components.append((compiled, encoder))
        return tuple(components)


def _compile(expression: str, resource_type: str | None) -> Compiled | None:
    try:
        return compile_expression(expression, resource_type)
    except FhirPathUnsupported:  # neither path can evaluate it (from_resource refuses such custom ones)
        return None


def _patient_compartments(resource_type: str, resource: dict[str, Any], ix: dict[str, Any]) -> list[str]:
    """`Patient/<id>` of every Patient compartment the resource is in (the official CompartmentDefinition:
    a Patient is in its own; others through the listed reference parameters). Stored as `pc` so compartment
    search, `$everything` and patient-scoped access are one indexed equality."""
    members: set[str] = set()
    if resource_type == "Patient" and isinstance(resource.get("id"), str):
        members.add(f"Patient/{resource['id']}")
    for code in patient_compartment_params(resource_type):
        for value in ix.get(code, ()):
            if isinstance(value, str) and value.startswith("Patient/") and value.count("/") == 1:
                members.add(value)
    return sorted(members)
