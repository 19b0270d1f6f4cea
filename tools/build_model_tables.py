"""Generate the validator's data files from the official FHIR R4 (4.0.1) definitions (CC0-1.0).

Writes:
- `fhir_server/model/data/elements.json.gz`: for every resource, datatype and backbone element, the JSON
  properties it may carry (type, cardinality, choice group, required binding), the primitive regexes, and
  the resource types whose `fhir.resources` R4B model does not match R4 (the second-opinion check skips them).
- `terminology/required-bindings.json`: for every value set that an R4 element binds with strength
  `required`, the (system -> codes) it allows, expanded from the FHIR/HL7 CodeSystems shipped in the
  definitions bundles; value sets that need external terminologies are listed under `not_checked` instead.

Why generated: reading the 9 MB of definitions at server start-up costs seconds; these tables load in
milliseconds and are reviewable in diffs. Run after changing this script:

    .venv/bin/python tools/build_model_tables.py [DEFINITIONS_DIR]

DEFINITIONS_DIR defaults to /work/shared/fhir/r4-definitions.
"""

from __future__ import annotations

import gzip
import json
import sys
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ELEMENTS_OUT = ROOT / "fhir_server/model/data/elements.json.gz"
BINDINGS_OUT = ROOT / "terminology/required-bindings.json"

FHIR_TYPE_EXT = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"
REGEX_EXT = "http://hl7.org/fhir/StructureDefinition/regex"
SD_PREFIX = "http://hl7.org/fhir/StructureDefinition/"
CODED_TYPES = {"code", "Coding", "CodeableConcept"}

Json = dict[str, Any]


def load_bundle(directory: Path, name: str) -> list[Json]:
    with gzip.open(directory / f"{name}.json.gz") as fh:
        bundle = json.load(fh)
    return [entry["resource"] for entry in bundle["entry"]]


# --------------------------------------------------------------------------------------------- elements


def type_code(element: Json, t: Json) -> str:
    """The FHIR type of one `ElementDefinition.type`: FHIRPath system types carry the FHIR type in an extension."""
    code: str = t["code"]
    if code.startswith("http://hl7.org/fhirpath/System."):
        for ext in t.get("extension", []):
            if ext["url"] == FHIR_TYPE_EXT:
                code = ext["valueUrl"]
                break
        else:
            code = "string"
    return code


def element_target(sd: Json, element: Json, code: str, t: Json, has_children: bool) -> str:
    """Which node (or primitive) a property's value is checked against."""
    if code in ("BackboneElement", "Element") and has_children:
        return node_key(sd, element["path"])
    if code == "Quantity" and SD_PREFIX + "SimpleQuantity" in t.get("profile", []):
        return "SimpleQuantity"
    return code


def node_key(sd: Json, path: str) -> str:
    """Node keys: the type name for roots (`SimpleQuantity` for that profile), the element path otherwise."""
    root: str = sd["snapshot"]["element"][0]["path"]
    if path == root:
        return str(sd["id"] if sd.get("derivation") == "constraint" else sd["type"])
    return path


def build_nodes(structure_definitions: list[Json]) -> dict[str, dict[str, list[Any]]]:
    """node key -> {json property name -> [type, min, max (-1 = *), choice group or "", binding url or ""]}."""
    nodes: dict[str, dict[str, list[Any]]] = {}
    for sd in structure_definitions:
        elements = sd["snapshot"]["element"]
        paths = {e["path"] for e in elements}
        root_path = elements[0]["path"]
        is_resource = sd["kind"] == "resource"
        nodes.setdefault(node_key(sd, root_path), {})
        for element in elements[1:]:
            path: str = element["path"]
            parent, name = path.rsplit(".", 1)
            props = nodes.setdefault(node_key(sd, parent), {})
            maximum = -1 if element["max"] == "*" else int(element["max"])
            binding = element.get("binding", {})
            bound = ""
            if binding.get("strength") == "required" and binding.get("valueSet"):
                bound = binding["valueSet"].split("|")[0]
            has_children = any(p.startswith(path + ".") for p in paths)
            if "contentReference" in element:
                target = element["contentReference"].lstrip("#")
                props[name] = [target, element["min"], maximum, "", ""]
                continue
            types = element.get("type", [])
            if name.endswith("[x]"):
                base = name[:-3]
                for t in types:
                    code = type_code(element, t)
                    json_name = base + code[0].upper() + code[1:]
                    target = element_target(sd, element, code, t, has_children)
                    props[json_name] = [target, element["min"], maximum, base, bound if code in CODED_TYPES else ""]
                continue
            (t,) = types
            code = type_code(element, t)
            if is_resource and parent == root_path and name == "id":
                code = "id"  # Resource.id is an `id` in R4 even though the snapshot types it System.String
            target = element_target(sd, element, code, t, has_children)
            attr = "xmlAttr" in element.get("representation", [])
            props[name] = [target, element["min"], maximum, "@" if attr else "", bound if code in CODED_TYPES else ""]
    return nodes


def build_primitives(types_bundle: list[Json]) -> dict[str, str]:
    """primitive type -> the regex its `value` must match (xhtml has none)."""
    primitives: dict[str, str] = {}
    for sd in types_bundle:
        if sd.get("resourceType") != "StructureDefinition" or sd["kind"] != "primitive-type":
            continue
        regex = ""
        for element in sd["snapshot"]["element"]:
            if element["path"].endswith(".value"):
                for ext in element["type"][0].get("extension", []):
                    if ext["url"] == REGEX_EXT:
                        regex = ext["valueString"]
        primitives[sd["id"]] = regex
    return primitives


# ---------------------------------------------------------------------------------- fhir.resources (R4B)

PRIMITIVE_GROUPS = {
    "boolean": "boolean",
    "integer": "integer",
    "positiveInt": "integer",
    "unsignedInt": "integer",
    "decimal": "decimal",
    "date": "date",
    "dateTime": "dateTime",
    "instant": "instant",
    "time": "time",
}


def r4b_field_shape(annotation: Any) -> tuple[bool, Any]:
    """(is a list, inner type) of a fhir.resources field annotation."""
    many = False
    inner = annotation
    while True:
        origin = typing.get_origin(inner)
        args = [a for a in typing.get_args(inner) if a is not type(None)]
        if origin is list:  # typing.List[X] reports `list` as its origin too
            many = True
            inner = args[0]
        elif origin is typing.Annotated:
            return many, inner
        elif args and origin is not None and len(args) == 1:
            inner = args[0]
        else:
            return many, inner


def r4b_primitive_name(inner: Any) -> str | None:
    """The FHIR primitive behind an Annotated[..., Date()] style type, or a Python base type's FHIR group."""
    if typing.get_origin(inner) is typing.Annotated:
        meta = typing.get_args(inner)[1]
        name = type(meta).__name__
        return name[0].lower() + name[1:]
    if inner is bool:
        return "boolean"
    return None


DATATYPE_ALIASES = {"SimpleQuantity": {"SimpleQuantity", "Quantity"}}


def r4b_required(field: Any) -> bool:
    extra = field.json_schema_extra or {}
    return bool(field.is_required() or extra.get("element_required") or extra.get("one_of_many_required"))


def compare_r4b(
    nodes: dict[str, dict[str, list[Any]]], resource_types: list[str]
) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """Where the `fhir.resources` R4B models would misjudge valid R4 JSON.

    Returns (resource types to skip entirely, node key -> {property or "*": reason}). A property listed for a
    node is one R4 allows but R4B rejects (absent in R4B, list-vs-single, another primitive family); "*"
    means R4B requires something R4 does not, so the node's mere presence is unsafe. Properties R4B adds
    are harmless (our own checks reject them first). A resource type is skipped when it has no R4B model
    or its own (non-datatype) nodes differ; datatype differences (e.g. R4B's Extension lacks `valueMeta`)
    only disable the second opinion for resources that actually use the property.
    Different string flavours (string vs markdown, uri vs url) are ignored.
    """
    from fhir.resources.R4B import get_fhir_model_class

    unsafe: dict[str, dict[str, str]] = {}
    done: set[tuple[str, str]] = set()

    def visit(key: str, cls: Any) -> None:
        if (key, cls.__qualname__) in done:
            return
        done.add((key, cls.__qualname__))
        fields = {
            f.alias or name: f
            for name, f in cls.model_fields.items()
            if name != "fhir_comments" and not name.endswith("__ext")
        }
        ours = {n: spec for n, spec in nodes[key].items() if spec[2] != 0}
        found: dict[str, str] = {}
        for name, field in fields.items():
            if name not in ours and r4b_required(field) and not (field.json_schema_extra or {}).get("one_of_many"):
                found["*"] = f"R4B requires {name}, which R4 does not have"
        for name, (target, minimum, maximum, _, _) in sorted(ours.items()):
            field = fields.get(name)
            if field is None:
                found[name] = "not in the R4B model"
                continue
            if r4b_required(field) and minimum == 0 and not (field.json_schema_extra or {}).get("one_of_many"):
                found["*"] = f"R4B requires {name}, R4 does not"
            many, inner = r4b_field_shape(field.annotation)
            if many != (maximum == -1):
                found[name] = f"R4 {'list' if maximum == -1 else 'single'}, R4B {'list' if many else 'single'}"
                continue
            if target in ("Resource", "xhtml"):
                continue
            klass = getattr(inner, "get_model_klass", None)
            if target in nodes:
                theirs_cls = klass() if klass is not None else None
                if theirs_cls is None or (
                    "." not in target and theirs_cls.__name__ not in DATATYPE_ALIASES.get(target, {target})
                ):
                    found[name] = f"R4 {target}, R4B {getattr(theirs_cls, '__name__', inner)}"
                else:
                    visit(target, theirs_cls)
                continue
            theirs = r4b_primitive_name(inner)
            want = PRIMITIVE_GROUPS.get(target, "string")
            got = PRIMITIVE_GROUPS.get(theirs, "string") if theirs else None
            if want != got:
                found[name] = f"R4 {target}, R4B {theirs or inner}"
        if found:
            unsafe.setdefault(key, {}).update(found)

    skip: dict[str, str] = {}
    for resource_type in resource_types:
        try:
            cls = get_fhir_model_class(resource_type)
        except ValueError:
            skip[resource_type] = "no R4B model"
            continue
        visit(resource_type, cls)
    for key, found in unsafe.items():
        owner = key.split(".")[0]
        if owner in resource_types and owner not in skip:
            skip[owner] = f"R4B model differs: {key}: " + "; ".join(f"{k}: {v}" for k, v in sorted(found.items()))
    unsafe = {k: v for k, v in unsafe.items() if k.split(".")[0] not in resource_types}
    return skip, unsafe


# ------------------------------------------------------------------------------------------ terminology

EXTERNAL_REASONS = {
    "urn:ietf:bcp:13": "MIME types (BCP 13) are an external, open-ended code system",
    "urn:ietf:bcp:47": "language tags (BCP 47) are an external grammar, not an enumerable list",
    "urn:iso:std:iso:4217": "ISO 4217 currency codes are external (ISO) content",
    "http://unitsofmeasure.org": "UCUM is an external code system (not HL7 content)",
    "http://loinc.org": "LOINC is external content",
    "http://snomed.info/sct": "SNOMED CT is external content",
}


class NotEnumerable(Exception):
    """A value set that cannot be expanded from the FHIR/HL7 CodeSystems we ship."""


def concept_tree(concepts: list[Json]) -> Iterator[tuple[Json, list[str]]]:
    """Every concept in a CodeSystem with its ancestors' codes (nested `concept` lists are is-a children)."""
    stack: list[tuple[Json, list[str]]] = [(c, []) for c in reversed(concepts)]
    while stack:
        concept, ancestors = stack.pop()
        yield concept, ancestors
        stack.extend((c, [*ancestors, concept["code"]]) for c in reversed(concept.get("concept", [])))


def system_codes(code_systems: dict[str, Json], system: str) -> dict[str, list[str]]:
    """code -> ancestor codes for one shipped, complete CodeSystem."""
    cs = code_systems.get(system)
    if cs is None:
        raise NotEnumerable(EXTERNAL_REASONS.get(system, f"code system {system} is not in the FHIR/HL7 bundles"))
    if cs.get("content") != "complete":
        raise NotEnumerable(f"code system {system} has content={cs.get('content')!r}")
    return {c["code"]: ancestors for c, ancestors in concept_tree(cs.get("concept", []))}


def apply_filter(codes: dict[str, list[str]], f: Json, system: str) -> set[str]:
    op, prop, value = f.get("op"), f.get("property"), f.get("value")
    if prop == "concept" and op == "is-a":
        return {c for c, anc in codes.items() if c == value or value in anc}
    if prop == "concept" and op == "descendent-of":
        return {c for c, anc in codes.items() if value in anc}
    raise NotEnumerable(f"filter {prop} {op} {value} on {system} is not evaluated")


def expand(
    value_sets: dict[str, Json], code_systems: dict[str, Json], url: str, seen: tuple[str, ...] = ()
) -> set[tuple[str, str]]:
    """All (system, code) pairs of a value set: compose.include/exclude of concepts, whole systems, filters, imports."""
    if url in seen:
        raise NotEnumerable(f"value set {url} imports itself")
    vs = value_sets.get(url)
    if vs is None:
        raise NotEnumerable(f"value set {url} is not in the FHIR/HL7 bundles (external content)")
    compose = vs.get("compose")
    if not compose:
        raise NotEnumerable(f"value set {url} has no compose")

    def part(inc: Json) -> set[tuple[str, str]]:
        result: set[tuple[str, str]] | None = None
        system = inc.get("system")
        if system:
            codes = system_codes(code_systems, system)
            if inc.get("concept"):
                chosen = {c["code"] for c in inc["concept"]}
                unknown = chosen - set(codes)
                if unknown:
                    raise NotEnumerable(f"value set {url} lists codes not in {system}: {sorted(unknown)}")
            else:
                chosen = set(codes)
            for f in inc.get("filter", []):
                chosen &= apply_filter(codes, f, system)
            result = {(system, c) for c in chosen}
        for imported in inc.get("valueSet", []):
            sub = expand(value_sets, code_systems, imported.split("|")[0], (*seen, url))
            result = sub if result is None else result & sub
        return result or set()

    allowed: set[tuple[str, str]] = set()
    for inc in compose.get("include", []):
        allowed |= part(inc)
    for exc in compose.get("exclude", []):
        allowed -= part(exc)
    return allowed


def build_bindings(nodes: dict[str, dict[str, list[Any]]], definitions: Path) -> Json:
    code_systems: dict[str, Json] = {}
    value_sets: dict[str, Json] = {}
    for name in ("valuesets", "v3-codesystems", "v2-tables"):
        for resource in load_bundle(definitions, name):
            if resource["resourceType"] == "CodeSystem":
                code_systems[resource["url"]] = resource
            elif resource["resourceType"] == "ValueSet":
                value_sets[resource["url"]] = resource
    used_by: dict[str, list[str]] = {}
    for key, props in nodes.items():
        for name, spec in props.items():
            if spec[4]:
                used_by.setdefault(spec[4], []).append(f"{key}.{name}")
    checked: dict[str, dict[str, list[str]]] = {}
    not_checked: dict[str, Json] = {}
    for url in sorted(used_by):
        try:
            pairs = expand(value_sets, code_systems, url)
        except NotEnumerable as exc:
            not_checked[url] = {"reason": str(exc), "elements": sorted(used_by[url])}
            continue
        by_system: dict[str, list[str]] = {}
        for system, code in sorted(pairs):
            by_system.setdefault(system, []).append(code)
        checked[url] = by_system
    return {
        "description": (
            "Required value-set bindings of FHIR R4 4.0.1, expanded to the codes they allow (system -> codes). "
            "Generated by tools/build_model_tables.py from the HL7 FHIR R4 definitions (CC0-1.0). "
            "Value sets under not_checked need external terminologies and are not enforced."
        ),
        "fhirVersion": "4.0.1",
        "value_sets": checked,
        "not_checked": not_checked,
    }


# ------------------------------------------------------------------------------------------------ main


def main() -> None:
    definitions = Path(sys.argv[1] if len(sys.argv) > 1 else "/work/shared/fhir/r4-definitions")
    types_bundle = load_bundle(definitions, "profiles-types")
    resources_bundle = load_bundle(definitions, "profiles-resources")
    sds = [
        r
        for r in types_bundle + resources_bundle
        if r["resourceType"] == "StructureDefinition" and r["kind"] in ("complex-type", "resource")
    ]
    resource_types = sorted(
        r["type"]
        for r in sds
        if r["kind"] == "resource" and not r.get("abstract") and r.get("derivation") == "specialization"
    )
    nodes = build_nodes(sds)
    for abstract in ("Resource", "DomainResource", "MetadataResource", "BackboneElement"):
        nodes.pop(abstract, None)
    primitives = build_primitives(types_bundle)
    skip, unsafe = compare_r4b(nodes, resource_types)
    elements = {
        "fhirVersion": "4.0.1",
        "source": "HL7 FHIR R4 4.0.1 StructureDefinitions (CC0-1.0); generated by tools/build_model_tables.py",
        "format": (
            "nodes: key -> {property: [type, min, max (-1 = *), "
            "choice group | '@' (XML attribute) | '', required binding]}"
        ),
        "resources": resource_types,
        "primitives": primitives,
        "nodes": nodes,
        "r4b_skip": skip,
        "r4b_unsafe": unsafe,
    }
    ELEMENTS_OUT.parent.mkdir(parents=True, exist_ok=True)
    raw = json.dumps(elements, sort_keys=True, separators=(",", ":")).encode()
    with gzip.GzipFile(ELEMENTS_OUT, "wb", mtime=0) as fh:  # mtime=0: byte-identical output on re-runs
        fh.write(raw)
    bindings = build_bindings(nodes, definitions)
    BINDINGS_OUT.parent.mkdir(parents=True, exist_ok=True)
    BINDINGS_OUT.write_text(json.dumps(bindings, indent=1, sort_keys=True) + "\n")
    print(f"{ELEMENTS_OUT.relative_to(ROOT)}: {len(nodes)} nodes, {ELEMENTS_OUT.stat().st_size} bytes")
    print(
        f"{BINDINGS_OUT.relative_to(ROOT)}: {len(bindings['value_sets'])} value sets checked, "
        f"{len(bindings['not_checked'])} not checked, {BINDINGS_OUT.stat().st_size} bytes"
    )
    print(f"fhir.resources R4B skipped for {len(skip)} types:")
    for name, reason in sorted(skip.items()):
        print(f"  {name}: {reason}")
    print("fhir.resources R4B unsafe datatype properties (second opinion skipped when present):")
    for key, found in sorted(unsafe.items()):
        print(f"  {key}: {found}")


if __name__ == "__main__":
    main()
