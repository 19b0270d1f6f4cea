"""Element tables of FHIR R4, built once from the generated `data/elements.json.gz`.

Why tables rather than pydantic models: validation walks the request JSON once, looking each property up in
a dict of precomputed `Prop`s; that keeps the check well under a millisecond per resource and lets every
problem carry its exact FHIRPath location. The data comes from the official R4 StructureDefinitions via
`tools/build_model_tables.py` (run it again when the definitions change; never edit the data by hand).

A *node* is anything with properties: a resource type (`Patient`), a complex datatype (`HumanName`,
`SimpleQuantity`) or a backbone element, keyed by its path (`Patient.contact`). Choice elements are
expanded to their JSON names (`valueQuantity`, `valueString`…), all sharing one choice group.
"""

from __future__ import annotations

import gzip
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

DATA_FILE = Path(__file__).with_name("data") / "elements.json.gz"

# How a property's value is checked.
PRIMITIVE = 0  # JSON scalar checked against a FHIR primitive type
COMPLEX = 1  # JSON object checked against another node
RESOURCE = 2  # JSON object checked against the node named by its own `resourceType`
XHTML = 3  # Narrative.div


@dataclass(slots=True, eq=False)
class Prop:
    """One JSON property a node may carry."""

    name: str
    type: str  # primitive type name, node key, "Resource" or "xhtml"
    kind: int
    min: int
    max: int  # -1 for unbounded; 0 means "not allowed here" (profiled away, e.g. SimpleQuantity.comparator)
    many: bool  # repeating element: always a JSON array
    group: str  # choice group (`value` for value[x]) or ""
    binding: str  # required value set canonical URL, or ""
    companion: bool  # may carry a `_name` primitive extension companion
    r4b_unsafe: bool = False  # fhir.resources' R4B model would wrongly reject this property
    node: Node | None = None  # resolved target for COMPLEX props


@dataclass(slots=True, eq=False)
class Node:
    """A resource, datatype or backbone element: its properties and what must be present."""

    key: str
    props: dict[str, Prop] = field(default_factory=dict)
    # (label for messages, JSON names any one of which satisfies min >= 1)
    required: tuple[tuple[str, tuple[str, ...]], ...] = ()
    r4b_unsafe: bool = False  # R4B requires something R4 does not: the node's presence disables the second opinion


@dataclass(slots=True, eq=False)
class Tables:
    """Everything validation needs, loaded once per process."""

    nodes: dict[str, Node]
    resources: frozenset[str]
    primitive_regex: dict[str, re.Pattern[str] | None]
    r4b_skip: dict[str, str]

    def resource(self, resource_type: str) -> Node | None:
        return self.nodes.get(resource_type) if resource_type in self.resources else None


def _compile(regex: str) -> re.Pattern[str] | None:
    # FHIR regexes follow XML Schema / Java, where \s and \S are ASCII-only: re.ASCII gives the same meaning.
    return re.compile(regex, re.ASCII) if regex else None


@cache
def load_tables() -> Tables:
    """Load and link the element tables (cached: the data is immutable for the life of the process)."""
    with gzip.open(DATA_FILE) as fh:
        data = json.load(fh)
    primitives: dict[str, str] = data["primitives"]
    unsafe: dict[str, dict[str, str]] = data["r4b_unsafe"]
    nodes: dict[str, Node] = {}
    for key, raw_props in data["nodes"].items():
        node = Node(key)
        for name, (target, minimum, maximum, group, binding) in raw_props.items():
            if target in primitives and target != "xhtml":
                kind = PRIMITIVE
            elif target == "xhtml":
                kind = XHTML
            elif target == "Resource":
                kind = RESOURCE
            else:
                kind = COMPLEX
            attribute = group == "@"  # XML attributes (Element.id, Extension.url) take no extensions
            node.props[name] = Prop(
                name=name,
                type=target,
                kind=kind,
                min=minimum,
                max=maximum,
                many=maximum == -1,
                group="" if attribute else group,
                binding=binding,
                companion=kind == PRIMITIVE and not attribute,
                r4b_unsafe=name in unsafe.get(key, {}),
            )
        node.r4b_unsafe = "*" in unsafe.get(key, {})
        nodes[key] = node
    for node in nodes.values():
        required: list[tuple[str, tuple[str, ...]]] = []
        groups: dict[str, list[str]] = {}
        for prop in node.props.values():
            if prop.kind == COMPLEX:
                prop.node = nodes[prop.type]
            names = (prop.name, "_" + prop.name) if prop.companion else (prop.name,)
            if prop.group:
                groups.setdefault(prop.group, []).extend(names)
                label = prop.group + "[x]"
                if prop.min >= 1 and label not in {seen for seen, _ in required}:
                    required.append((label, ()))
            elif prop.min >= 1:
                required.append((prop.name, names))
        node.required = tuple((label, names or tuple(groups[label[:-3]])) for label, names in required)
    return Tables(
        nodes=nodes,
        resources=frozenset(data["resources"]),
        primitive_regex={name: _compile(regex) for name, regex in primitives.items()},
        r4b_skip=dict(data["r4b_skip"]),
    )


# ------------------------------------------------------------------------------------ primitive values

# (issue code, message) for a bad value, or None when the value is fine.
Problem = tuple[str, str] | None
PrimitiveCheck = Callable[[Any], Problem]

_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1
_DAYS_IN_MONTH = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_INTEGER_MIN = {"integer": _INT32_MIN, "unsignedInt": 0, "positiveInt": 1}
_DATE_TYPES = frozenset({"date", "dateTime", "instant"})
_SHOWN = 60  # characters of a bad value quoted back in a message


def json_kind(value: Any) -> str:
    """The JSON kind of a parsed value, for messages ("a number", "an array"...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float, Decimal)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _shown(value: str) -> str:
    return repr(value if len(value) <= _SHOWN else value[:_SHOWN] + "...")


def _calendar_ok(value: str) -> bool:
    """The regexes allow 2023-02-31; reject days past the month's end (29 Feb only in leap years)."""
    if len(value) < 10:
        return True
    year, month, day = int(value[0:4]), int(value[5:7]), int(value[8:10])
    if day <= 28 or (month != 2 and day <= _DAYS_IN_MONTH[month]):
        return True
    return month == 2 and day == 29 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _string_check(type_name: str, pattern: re.Pattern[str] | None) -> PrimitiveCheck:
    dated = type_name in _DATE_TYPES

    def check(value: Any) -> Problem:
        if type(value) is not str:
            return "structure", f"a {type_name} must be a JSON string, not {json_kind(value)}"
        if not value.strip():
            return "value", f"a {type_name} must not be empty or only whitespace"
        if pattern is not None and pattern.fullmatch(value) is None:
            return "value", f"{_shown(value)} is not a valid {type_name}"
        if dated and not _calendar_ok(value):
            return "value", f"{_shown(value)} is not a valid {type_name}: no such day"
        return None

    return check


def _base64_check(value: Any) -> Problem:
    """The spec regex `(\\s*([0-9a-zA-Z\\+/=]){4}\\s*)+` backtracks badly on megabyte attachments; same rule, linear."""
    if type(value) is not str:
        return "structure", f"a base64Binary must be a JSON string, not {json_kind(value)}"
    compact = _WHITESPACE.sub("", value)
    if not compact:
        return "value", "a base64Binary must not be empty or only whitespace"
    if len(compact) % 4 or _BASE64.fullmatch(compact) is None:
        return "value", f"{_shown(value)} is not valid base64"
    return None


_WHITESPACE = re.compile(r"\s+", re.ASCII)
_BASE64 = re.compile(r"[0-9a-zA-Z+/=]+", re.ASCII)


def _boolean_check(value: Any) -> Problem:
    if value is True or value is False:
        return None
    return "structure", f"a boolean must be JSON true or false, not {json_kind(value)}"


def _integer_check(type_name: str) -> PrimitiveCheck:
    low = _INTEGER_MIN[type_name]

    def check(value: Any) -> Problem:
        if type(value) is int:
            number = value
        elif type(value) is Decimal and value.is_finite() and value.as_tuple().exponent == 0:
            number = int(value)  # a very long integer literal the JSON parser kept exact: out of range below
        else:
            return "structure", f"an {type_name} must be a JSON integer, not {json_kind(value)}"
        if number < low or number > _INT32_MAX:
            return "value", f"{number} is out of range for {type_name} ({low}..{_INT32_MAX})"
        return None

    return check


def _decimal_check(value: Any) -> Problem:
    kind = type(value)
    if kind is Decimal:
        return None if value.is_finite() else ("value", "a decimal must be a finite number")
    if kind is int:
        return None
    if kind is float:
        return None if math.isfinite(value) else ("value", "a decimal must be a finite number")
    return "structure", f"a decimal must be a JSON number, not {json_kind(value)}"


def primitive_checks(tables: Tables) -> dict[str, PrimitiveCheck]:
    """One check per primitive type, built once: the regexes are compiled here, never per call."""
    checks: dict[str, PrimitiveCheck] = {}
    for name, pattern in tables.primitive_regex.items():
        if name == "boolean":
            checks[name] = _boolean_check
        elif name in _INTEGER_MIN:
            checks[name] = _integer_check(name)
        elif name == "decimal":
            checks[name] = _decimal_check
        elif name == "base64Binary":
            checks[name] = _base64_check
        elif name != "xhtml":
            checks[name] = _string_check(name, pattern)
    return checks
