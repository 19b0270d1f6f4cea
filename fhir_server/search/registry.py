"""The search-parameter registry: the 1,375 official R4 SearchParameters plus the server's custom ones.

Why one registry object per app (not a module global): custom SearchParameters are added at run time,
and two apps in one process (tests) must not see each other's. Parsing the shipped bundle is cached, so
each `SearchRegistry.official()` is a cheap copy. `version()` bumps on every change so the extractor
knows to recompile its per-type plans.

The bundle is the official `search-parameters.json` (CC0), shipped gzipped in `data/` because the server
must not read the shared reference folder at run time.
"""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from fhir_server import errors
from fhir_server.search.fhirpath import FhirPathUnsupported, compile_expression

DATA = Path(__file__).with_name("data")
BUNDLE_FILE = DATA / "search-parameters.json.gz"
PATIENT_COMPARTMENT_FILE = DATA / "compartmentdefinition-patient.json"

TYPES = frozenset({"string", "token", "reference", "date", "number", "quantity", "uri", "composite", "special"})
# Codes become MongoDB field names (`ix.<code>`): no dots, no `$`, nothing a query string would split on.
_CODE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_\-]*")
_NOT_DOMAIN_RESOURCES = frozenset({"Bundle", "Binary", "Parameters"})
_NAME_LIKE = ("name", "family", "given")
_CHAINED = ("encounter", "organization", "general-practitioner")
MAX_INDEXES = 14
_BOTH_ENDS = {"date", "birthdate"}  # date params whose `ge`/`gt`/`eb` searches need the `.hi` index too


@dataclass(frozen=True)
class SearchParam:
    """One search parameter as the server uses it (a projection of a SearchParameter resource)."""

    code: str
    url: str
    type: str  # string|token|reference|date|number|quantity|uri|composite|special
    base: tuple[str, ...]
    expression: str | None
    targets: tuple[str, ...] = ()
    modifiers: tuple[str, ...] = ()
    comparators: tuple[str, ...] = ()
    multiple_or: bool = True
    multiple_and: bool = True
    components: tuple[tuple[str, str], ...] = ()  # (definition canonical URL, expression relative to the node)
    chain: tuple[str, ...] = ()


def _strings(value: Any, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise errors.invalid(f"SearchParameter.{name} must be a list of non-empty strings", f"SearchParameter.{name}")
    return tuple(value)


def _project(resource: dict[str, Any]) -> SearchParam:
    """The SearchParam of a SearchParameter resource, without judging whether it is usable."""
    components = tuple(
        (str(c.get("definition", "")), str(c.get("expression", "")))
        for c in resource.get("component") or ()
        if isinstance(c, dict)
    )
    return SearchParam(
        code=resource.get("code", ""),
        url=resource.get("url", ""),
        type=resource.get("type", ""),
        base=_strings(resource.get("base"), "base"),
        expression=resource.get("expression") or None,
        targets=_strings(resource.get("target"), "target"),
        modifiers=_strings(resource.get("modifier"), "modifier"),
        comparators=_strings(resource.get("comparator"), "comparator"),
        multiple_or=resource.get("multipleOr", True) is not False,
        multiple_and=resource.get("multipleAnd", True) is not False,
        components=components,
        chain=_strings(resource.get("chain"), "chain"),
    )


@cache
def _official() -> tuple[SearchParam, ...]:
    """The shipped bundle, parsed once per process. Three official parameters have no expression
    (`_text`, `_content`, `_query`): they stay registered (so they parse) but are never extracted."""
    with gzip.open(BUNDLE_FILE) as fh:
        bundle = json.load(fh)
    return tuple(_project(entry["resource"]) for entry in bundle["entry"])


@cache
def _patient_compartment() -> dict[str, tuple[str, ...]]:
    definition = json.loads(PATIENT_COMPARTMENT_FILE.read_text())
    return {r["code"]: tuple(r["param"]) for r in definition["resource"] if r.get("param")}


@cache
def encounter_compartment() -> dict[str, tuple[str, ...]]:
    """Resource type -> the parameters that put it in an Encounter's compartment (official R4
    CompartmentDefinition/encounter; `{def}` marks the Encounter itself)."""
    definition = json.loads(PATIENT_COMPARTMENT_FILE.with_name("compartmentdefinition-encounter.json").read_text())
    return {r["code"]: tuple(r["param"]) for r in definition["resource"] if r.get("param")}


def patient_compartment() -> dict[str, tuple[str, ...]]:
    """Resource type -> the parameter codes that put a resource of that type in a Patient's compartment
    (official R4 CompartmentDefinition/patient; types outside the compartment are absent)."""
    return dict(_patient_compartment())


def patient_compartment_params(resource_type: str) -> tuple[str, ...]:
    """The parameters that put a `resource_type` in a Patient's compartment (hot path: no copy)."""
    return _patient_compartment().get(resource_type, ())


class SearchRegistry:
    """Search parameters by canonical URL, with per-type views by code."""

    def __init__(self, params: tuple[SearchParam, ...] = ()) -> None:
        self._by_url: dict[str, SearchParam] = {p.url: p for p in params}
        self._version = 0
        self._per_type: dict[str, dict[str, SearchParam]] = {}

    @classmethod
    def official(cls) -> SearchRegistry:
        """A fresh registry holding the official R4 parameters (independent of every other instance)."""
        return cls(_official())

    def version(self) -> int:
        return self._version

    def for_type(self, resource_type: str) -> dict[str, SearchParam]:
        """code -> parameter for one type, including those based on Resource and DomainResource.
        A custom parameter added later wins over an earlier one with the same code."""
        found = self._per_type.get(resource_type)
        if found is None:
            found = self._per_type[resource_type] = self._build(resource_type)
        return found

    def _build(self, resource_type: str) -> dict[str, SearchParam]:
        bases = {resource_type, "Resource"}
        if resource_type not in _NOT_DOMAIN_RESOURCES:
            bases.add("DomainResource")
        generic: dict[str, SearchParam] = {}
        specific: dict[str, SearchParam] = {}
        for param in self._by_url.values():
            if resource_type in param.base:
                specific[param.code] = param
            elif not bases.isdisjoint(param.base):
                generic[param.code] = param
        return {**generic, **specific}

    def get(self, resource_type: str, code: str) -> SearchParam | None:
        return self.for_type(resource_type).get(code)

    def by_url(self, url: str) -> SearchParam | None:
        return self._by_url.get(url)

    def add(self, param: SearchParam) -> None:
        """Register a custom parameter; one with the same URL is replaced."""
        self._by_url.pop(param.url, None)
        self._by_url[param.url] = param
        self._changed()

    def remove(self, url: str) -> None:
        if self._by_url.pop(url, None) is not None:
            self._changed()

    def _changed(self) -> None:
        self._version += 1
        self._per_type.clear()

    def __len__(self) -> int:
        return len(self._by_url)

    @staticmethod
    def from_resource(resource: dict[str, Any]) -> SearchParam:
        """A SearchParameter resource as a SearchParam; 400 (invalid) when the server could not use it."""
        if not isinstance(resource, dict) or resource.get("resourceType") != "SearchParameter":
            raise errors.invalid("Not a SearchParameter resource")
        for name in ("url", "code", "type", "expression"):
            if not isinstance(resource.get(name), str) or not resource[name].strip():
                raise errors.invalid(f"SearchParameter.{name} is required to use a search parameter",
                                     f"SearchParameter.{name}")
        param = _project(resource)
        if param.type not in TYPES:
            raise errors.invalid(f"SearchParameter.type '{param.type}' is not a search parameter type",
                                 "SearchParameter.type")
        if param.type == "special":
            raise errors.invalid("A special search parameter needs server code; it cannot be added as data",
                                 "SearchParameter.type")
        if not _CODE.fullmatch(param.code):
            raise errors.invalid(f"SearchParameter.code '{param.code}' must be letters, digits, '-' and '_'",
                                 "SearchParameter.code")
        if not param.base:
            raise errors.invalid("SearchParameter.base must name at least one resource type", "SearchParameter.base")
        _check_expression(param.expression or "", "SearchParameter.expression")
        if param.type == "composite":
            if len(param.components) < 2:
                raise errors.invalid("A composite SearchParameter needs at least two components",
                                     "SearchParameter.component")
            for index, (definition, expression) in enumerate(param.components):
                where = f"SearchParameter.component[{index}]"
                if not definition or not expression:
                    raise errors.invalid("Each component needs a definition and an expression", where)
                _check_expression(expression, f"{where}.expression")
        return param

    def index_keys(self, resource_type: str) -> list[str]:
        """The MongoDB index keys for a type (docs/search.md): `ts`, then the Patient-compartment references
        (and `patient`), `identifier`, `code`, name-like strings (on their prefix tokens `ixp`), `url`, then
        date parameters (on `.lo`; `date` and `birthdate` on `.hi` too), and `pc` (Patient compartments) for
        the types in the Patient compartment;
        at most MAX_INDEXES, the later rules giving way first."""
        params = self.for_type(resource_type)
        keys = ["ts"]
        if resource_type == "Patient" or resource_type in _patient_compartment():
            keys.append("pc")

        def add(code: str, suffix: str = "") -> None:
            key = f"ix.{code}{suffix}"
            if code in params and key not in keys:
                keys.append(key)

        for code in (*_patient_compartment().get(resource_type, ()), "patient"):
            if code in params and params[code].type == "reference" and resource_type != "Patient":
                add(code)  # (a Patient's own `link` is served by `pc`)
        for code in ("identifier", "code"):
            add(code)
        for code in _CHAINED:  # references that chains, includes and Encounter/$everything walk
            if code in params and params[code].type == "reference":
                add(code)
        for code in _NAME_LIKE:  # starts-with is an equality on the prefix tokens
            if code in params and params[code].type == "string" and narrowed_by(resource_type, code, params) is None:
                keys.append(f"ixp.{code}")
        add("url")
        for code, param in params.items():
            if param.type == "date" and not code.startswith("_") and param.expression:
                add(code, ".lo")
                if code in _BOTH_ENDS:
                    add(code, ".hi")
        return keys[:MAX_INDEXES]


def narrowed_by(resource_type: str, code: str, params: dict[str, SearchParam]) -> str | None:
    """`family` and `given` values are also `name` values (HumanName parts), so `ixp.name` can narrow their
    searches: one index instead of three, and a third of the index entries per write."""
    if code in ("family", "given") and "name" in params and params["name"].type == "string":
        return "name"
    return None


def _check_expression(expression: str, location: str) -> None:
    try:
        compile_expression(expression)
    except FhirPathUnsupported as exc:
        raise errors.invalid(f"{location} is not a FHIRPath expression this server can evaluate: {exc}",
                             location) from None
