"""`ResourceValidator`: is this JSON a structurally valid FHIR R4 resource?

Why our own walker: `fhir.resources` ships R4B models, which differ from R4 in places, and it is lax about JSON
kinds (it accepts "yes" for a boolean and ignores required bindings). So the R4 StructureDefinitions are the
truth here: one pass over the JSON against precomputed element tables (`structure.py`) checks unknown
elements, JSON kinds, primitive formats, cardinality, choice types, primitive-extension companions, nested
and contained resources, and required bindings (`bindings.py`). When that pass finds nothing, the R4B model
gives a second opinion, but only where R4B describes the same structure as R4.

Every issue carries a FHIRPath-style location such as `Patient.name[0].given[1]`.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import ValidationError

from fhir_server.errors import Issue
from fhir_server.model.bindings import RequiredBindings, load_required_bindings
from fhir_server.model.structure import (
    COMPLEX,
    PRIMITIVE,
    RESOURCE,
    Node,
    PrimitiveCheck,
    Prop,
    Tables,
    json_kind,
    load_tables,
    primitive_checks,
)

_log = logging.getLogger(__name__)


class _Walk:
    """State of one validation: the issues found, and whether the R4B second opinion can be trusted."""

    __slots__ = ("issues", "r4b_safe")

    def __init__(self) -> None:
        self.issues: list[Issue] = []
        self.r4b_safe = True

    def add(self, code: str, path: str, message: str) -> None:
        self.issues.append(Issue(code, f"{path}: {message}", expression=(path,)))


class ResourceValidator:
    """Validates resource JSON (as parsed by `fhirjson.parse`) against FHIR R4; reusable and thread-safe."""

    def __init__(self) -> None:
        self._tables: Tables = load_tables()
        self._bindings: RequiredBindings = load_required_bindings()
        self._checks: dict[str, PrimitiveCheck] = primitive_checks(self._tables)
        self._element: Node = self._tables.nodes["Element"]  # what a `_name` companion object may hold
        self._extension: Node = self._tables.nodes["Extension"]

    def validate(self, resource: dict[str, Any]) -> list[Issue]:
        """Issues with severity 'error' mean: reject with 400. Empty list: valid."""
        walk = _Walk()
        resource_type = resource.get("resourceType") if isinstance(resource, dict) else None
        self._resource(resource, resource_type if isinstance(resource_type, str) else "Resource", walk)
        if not walk.issues and walk.r4b_safe:
            walk.issues.extend(second_opinion(resource))
        return walk.issues

    # ------------------------------------------------------------------------------------------- walking

    def _resource(self, value: Any, path: str, walk: _Walk) -> None:
        """A resource at the root, in `contained`, `Bundle.entry.resource` or `Parameters.parameter.resource`."""
        if type(value) is not dict:
            walk.add("structure", path, f"a resource must be a JSON object, not {json_kind(value)}")
            return
        resource_type = value.get("resourceType")
        if not isinstance(resource_type, str):
            walk.add("structure", path, "a resource needs a resourceType")
            return
        node = self._tables.resource(resource_type)
        if node is None:
            walk.add("structure", path, f"{resource_type!r} is not an R4 resource type")
            return
        if resource_type in self._tables.r4b_skip:
            walk.r4b_safe = False
        self._node(value, node, path, walk, True)

    def _node(self, obj: dict[str, Any], node: Node, path: str, walk: _Walk, is_resource: bool = False) -> None:
        """Every property of one JSON object, then what the node requires."""
        if not obj:
            walk.add("structure", path, "an element must not be an empty object")
            return
        if node.r4b_unsafe:
            walk.r4b_safe = False
        props = node.props
        groups: dict[str, str] | None = None
        for key, value in obj.items():
            prop = props.get(key)
            if prop is None:
                if key[:1] == "_":
                    base = props.get(key[1:])
                    if base is not None and base.companion:
                        self._companion(value, base, obj.get(base.name), f"{path}.{base.name}", walk)
                        if base.group and base.name not in obj:
                            groups = self._choice(groups, base, path, walk)
                        continue
                elif is_resource and key == "resourceType":
                    continue
                walk.add("structure", f"{path}.{key}", f"unknown element {key!r} in {node.key}")
                continue
            if prop.max == 0:
                walk.add("structure", f"{path}.{key}", f"{key!r} is not allowed in {node.key}")
                continue
            if prop.group:
                groups = self._choice(groups, prop, path, walk)
            if prop.r4b_unsafe:
                walk.r4b_safe = False
            if prop.many:
                if type(value) is not list:
                    walk.add(
                        "structure",
                        f"{path}.{key}",
                        f"a repeating element must be a JSON array, not {json_kind(value)}",
                    )
                    continue
                if not value:
                    walk.add("structure", f"{path}.{key}", "an array must not be empty")
                    continue
                companions = obj.get("_" + key) if prop.companion else None
                for i, item in enumerate(value):
                    if item is None:
                        if type(companions) is list and i < len(companions) and companions[i] is not None:
                            continue  # a value-less primitive whose extensions sit in the `_` array
                        walk.add("structure", f"{path}.{key}[{i}]", "null is not allowed here")
                        continue
                    self._value(item, prop, f"{path}.{key}[{i}]", walk)
            elif value is None:
                walk.add("structure", f"{path}.{key}", "null is not allowed here")
            elif type(value) is list:
                walk.add("structure", f"{path}.{key}", "a single-valued element must not be a JSON array")
            else:
                self._value(value, prop, f"{path}.{key}", walk)
        for label, names in node.required:
            for name in names:
                if name in obj:
                    break
            else:
                walk.add("required", f"{path}.{label}", f"{label!r} is required in {node.key}")
        if node is self._extension:
            has_value = groups is not None or any(k[:5] == "value" for k in obj)  # unknown valueX: reported above
            if ("extension" in obj) == has_value:
                both = ", not both" if has_value else ""
                walk.add("invariant", path, f"an extension must have nested extensions or a value[x]{both} (ext-1)")

    @staticmethod
    def _choice(groups: dict[str, str] | None, prop: Prop, path: str, walk: _Walk) -> dict[str, str]:
        """Record a choice-type property; a second type for the same `name[x]` is an error."""
        if groups is None:
            groups = {}
        first = groups.setdefault(prop.group, prop.name)
        if first != prop.name:
            walk.add(
                "structure", f"{path}.{prop.name}", f"only one of {prop.group}[x] may be present; {first!r} is already"
            )
        return groups

    def _value(self, value: Any, prop: Prop, path: str, walk: _Walk) -> None:
        """One non-null value of a property (an array item for repeating elements)."""
        kind = prop.kind
        if kind == PRIMITIVE:
            problem = self._checks[prop.type](value)
            if problem is not None:
                walk.add(problem[0], path, problem[1])
            elif prop.binding:
                message = self._bindings.code_problem(prop.binding, value)
                if message is not None:
                    walk.add("code-invalid", path, message)
        elif kind == COMPLEX:
            if type(value) is not dict:
                walk.add("structure", path, f"a {prop.type} must be a JSON object, not {json_kind(value)}")
                return
            assert prop.node is not None
            self._node(value, prop.node, path, walk)
            if prop.binding:
                self._coded(value, prop, path, walk)
        elif kind == RESOURCE:
            self._resource(value, path, walk)
        elif type(value) is not str or not value.lstrip().startswith("<div"):
            walk.add("value", path, "the narrative div must be an XHTML string starting with <div")

    def _coded(self, value: dict[str, Any], prop: Prop, path: str, walk: _Walk) -> None:
        """Required binding on a Coding or CodeableConcept."""
        if prop.type == "Coding":
            message = self._bindings.coding_problem(prop.binding, value.get("system"), value.get("code"))
            if message is not None:
                walk.add("code-invalid", f"{path}.code", message)
            return
        codings = value.get("coding")
        if type(codings) is not list:
            return
        for i, coding in enumerate(codings):
            if type(coding) is dict:
                message = self._bindings.coding_problem(prop.binding, coding.get("system"), coding.get("code"))
                if message is not None:
                    walk.add("code-invalid", f"{path}.coding[{i}].code", message)

    def _companion(self, value: Any, prop: Prop, primary: Any, path: str, walk: _Walk) -> None:
        """`_name`: the id/extensions of a primitive; for arrays, aligned item by item with the values."""
        if not prop.many:
            if type(value) is not dict:
                walk.add("structure", path, f"the _{prop.name} companion must be a JSON object, not {json_kind(value)}")
            else:
                self._node(value, self._element, path, walk)
            return
        if type(value) is not list or not value:
            walk.add("structure", path, f"the _{prop.name} companion of a repeating element must be a non-empty array")
            return
        if primary is not None and (type(primary) is not list or len(primary) != len(value)):
            walk.add("structure", path, f"_{prop.name} must have one entry (or null) per {prop.name} value")
            return
        for i, item in enumerate(value):
            if item is None:
                if primary is None:
                    walk.add("structure", f"{path}[{i}]", "null is not allowed here")
                continue
            if type(item) is not dict:
                walk.add(
                    "structure",
                    f"{path}[{i}]",
                    f"a primitive's extension object must be a JSON object, not {json_kind(item)}",
                )
            else:
                self._node(item, self._element, f"{path}[{i}]", walk)


# ------------------------------------------------------------------------------------ second opinion

_PYDANTIC_CODES = {"extra_forbidden": "structure", "missing": "required", "value_error": "value"}


def second_opinion(resource: dict[str, Any]) -> list[Issue]:
    """Validate with the `fhir.resources` R4B model; only called for types whose R4B structure matches R4."""
    from fhir.resources.R4B import get_fhir_model_class  # imported late: ~0.3 s, and only needed here

    resource_type = resource["resourceType"]
    try:
        model = get_fhir_model_class(resource_type)
    except ValueError:
        return []
    try:
        model.model_validate(resource)
    except ValidationError as exc:
        return _issues(resource_type, exc)
    except Exception:  # a crash in the second opinion must not turn input our R4 checks accepted into a 500
        _log.warning("fhir.resources failed on a %s that passed the R4 checks", resource_type, exc_info=True)
    return []


def _issues(resource_type: str, exc: ValidationError) -> list[Issue]:
    """pydantic errors as Issues; `loc` holds JSON names and array indexes, `_name` companions lose the `_`."""
    issues = []
    for error in exc.errors(include_url=False, include_input=False):
        path = resource_type + "".join(
            f"[{part}]" if isinstance(part, int) else f".{str(part).lstrip('_')}" for part in error["loc"]
        )
        code = _PYDANTIC_CODES.get(error["type"], "structure" if error["type"].endswith("_type") else "invalid")
        issues.append(Issue(code, f"{path}: {error['msg']} (fhir.resources)", expression=(path,)))
    return issues
