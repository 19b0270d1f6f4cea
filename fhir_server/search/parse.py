"""Search query parsing: request parameters -> a frozen `SearchQuery`, with no I/O (search.html).

Every parameter is resolved against the registry here, so later stages never meet an unknown name. What
this server does not support is never silently widened: it is collected in `SearchQuery.dropped` (and
reported in the Bundle) or, with `Prefer: handling=strict`, refused with a 400 naming it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fhir_server import errors

if TYPE_CHECKING:
    from fhir_server.search.registry import SearchParam, SearchRegistry

MAX_VALUES = 100  # OR values in one parameter
MAX_PARAMS = 50  # parameters in one query
MAX_CHAIN_DEPTH = 3
MAX_VALUE_LENGTH = 1024
MAX_INCLUDES = 20

# Modifiers this server implements, per parameter type (search.html#modifiers).
MODIFIERS: dict[str, frozenset[str]] = {
    "string": frozenset({"exact", "contains", "missing"}),
    "token": frozenset({"not", "text", "of-type", "missing"}),
    "reference": frozenset({"identifier", "missing"}),  # plus a resource type name
    "date": frozenset({"missing"}),
    "number": frozenset({"missing"}),
    "quantity": frozenset({"missing"}),
    "uri": frozenset({"below", "above", "missing"}),
    "composite": frozenset({"missing"}),
    "special": frozenset(),
}
PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
RESULT_PARAMS = {"_sort", "_count", "_total", "_summary", "_elements", "_include", "_revinclude", "_contained",
                 "_containedType", "_format", "_pretty", "_cursor", "_type"}
TOTAL_MODES = ("none", "estimate", "accurate")


@dataclass(frozen=True)
class ChainLink:
    """One hop of a chain: follow reference `param` into resources of `target_types`."""

    param: SearchParam
    target_types: tuple[str, ...]


@dataclass(frozen=True)
class Has:
    """`_has:Type:ref:...`: keep resources that `Type` resources point at through `ref`, where `inner` holds."""

    resource_type: str
    reference: SearchParam
    inner: Criterion


@dataclass(frozen=True)
class Criterion:
    """One parameter as written (AND with the others); `values` are its comma-separated alternatives (OR),
    still escaped. For a chain, `chain` leads to the resource type where `param` applies."""

    name: str
    param: SearchParam | None
    modifier: str | None
    values: tuple[str, ...]
    chain: tuple[ChainLink, ...] = ()
    has: Has | None = None
    target_type: str | None = None  # the `:Type` modifier of a reference parameter


@dataclass(frozen=True)
class Include:
    """`_include=Source:param[:Target]` (or `*`), `:iterate` to follow from included resources too."""

    source: str
    param: SearchParam | None  # None for `*`
    target: str | None
    iterate: bool
    reverse: bool


@dataclass(frozen=True)
class SortKey:
    param: SearchParam | None  # None: `_id`; `_lastUpdated` is a param
    descending: bool
    name: str


@dataclass(frozen=True)
class SearchQuery:
    resource_type: str | None
    types: tuple[str, ...]
    criteria: tuple[Criterion, ...]
    sort: tuple[SortKey, ...] = ()
    count: int = 50
    total: str | None = None
    summary: str | None = None
    elements: tuple[str, ...] | None = None
    includes: tuple[Include, ...] = ()
    cursor: str | None = None
    dropped: tuple[str, ...] = field(default=())
    applied: tuple[tuple[str, str], ...] = field(default=())


def split_values(value: str) -> tuple[str, ...]:
    """Split on commas not escaped by a backslash; escapes stay (search.html#escaping)."""
    return tuple(split_unescaped(value, ","))


def unescape(value: str) -> str:
    return re.sub(r"\\([\\,$|])", r"\1", value)


def split_unescaped(value: str, separator: str) -> list[str]:
    """Split on `separator` where it is not escaped; the parts keep their escapes."""
    parts, current, i = [], [], 0
    while i < len(value):
        char = value[i]
        if char == "\\" and i + 1 < len(value):
            current.append(value[i: i + 2])
            i += 2
            continue
        if char == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
        i += 1
    parts.append("".join(current))
    return parts


class Parser:
    """Parses the parameters of one search against one registry and the set of known resource types."""

    def __init__(self, registry: SearchRegistry, known_types: set[str], strict: bool, max_count: int,
                 default_count: int) -> None:
        self.registry = registry
        self.known_types = known_types
        self.strict = strict
        self.max_count = max_count
        self.default_count = default_count
        self.dropped: list[str] = []

    def drop(self, name: str, why: str) -> None:
        if self.strict:
            raise errors.invalid(f"{name}: {why}", name)
        self.dropped.append(f"{name}: {why}")

    def parse(self, resource_type: str | None, params: list[tuple[str, str]]) -> SearchQuery:
        if len(params) > MAX_PARAMS:
            raise errors.too_large(f"The search has {len(params)} parameters; at most {MAX_PARAMS} are allowed")
        singles: dict[str, str] = {}
        criteria: list[Criterion] = []
        includes: list[Include] = []
        applied: list[tuple[str, str]] = []
        types: tuple[str, ...] = (resource_type,) if resource_type else ()
        for name, value in params:
            if len(value) > MAX_VALUE_LENGTH:
                raise errors.invalid(f"The value of {name} is longer than {MAX_VALUE_LENGTH} characters", name)
            base = name.split(":", 1)[0]
            if base in ("_include", "_revinclude"):
                include = self._include(name, value, reverse=base == "_revinclude")
                if include:
                    includes.append(include)
                    applied.append((name, value))
                continue
            if base in RESULT_PARAMS:
                if base in singles:
                    raise errors.invalid(f"{base} is given more than once", base)
                singles[base] = value
                continue
        if "_type" in singles:
            if resource_type:
                raise errors.invalid("_type applies to system-level search only", "_type")
            types = tuple(t.strip() for t in singles["_type"].split(",") if t.strip())
            for t in types:
                if t not in self.known_types:
                    raise errors.invalid(f"_type: unknown resource type '{t}'", "_type")
            applied.append(("_type", ",".join(types)))
        context_types = types or (("Resource",) if resource_type is None else ())
        for name, value in params:
            base = name.split(":", 1)[0].split(".", 1)[0]
            if base in RESULT_PARAMS or base in ("_include", "_revinclude"):
                continue
            criterion = self._criterion(context_types, name, value)
            if criterion is not None:
                criteria.append(criterion)
                applied.append((name, value))
        if len(includes) > MAX_INCLUDES:
            raise errors.invalid(f"At most {MAX_INCLUDES} _include/_revinclude parameters are allowed")
        count = self._count(singles.get("_count"))
        total = singles.get("_total")
        if total is not None and total not in TOTAL_MODES:
            raise errors.invalid(f"_total={total} is not one of {', '.join(TOTAL_MODES)}", "_total")
        sort = self._sort(context_types, singles["_sort"]) if "_sort" in singles else ()
        summary = singles.get("_summary")
        elements = tuple(e.strip() for e in singles["_elements"].split(",") if e.strip()) if "_elements" in singles else None
        for result_param in ("_contained", "_containedType"):
            if result_param in singles:
                self.drop(result_param, "searching contained resources is not supported")
        for key in ("_sort", "_count", "_total", "_summary", "_elements"):
            if key in singles:
                applied.append((key, singles[key]))
        return SearchQuery(resource_type, types, tuple(criteria), sort, count, total, summary, elements,
                           tuple(includes), singles.get("_cursor"), tuple(self.dropped), tuple(applied))

    def _count(self, value: str | None) -> int:
        if value is None:
            return self.default_count
        if not value.isdigit():
            raise errors.invalid(f"_count={value} is not a whole number", "_count")
        return min(int(value), self.max_count)

    def _param(self, types: tuple[str, ...], code: str) -> SearchParam | None:
        """The parameter `code` if every one of `types` has it with the same type (system search over
        several types: the parameters they share, such as `_id` or `_lastUpdated`)."""
        found: SearchParam | None = None
        for t in types:
            param = self.registry.get(t, code)
            if param is None or (found is not None and param.type != found.type):
                return None
            found = found or param
        return found

    def _criterion(self, types: tuple[str, ...], name: str, value: str, depth: int = 0) -> Criterion | None:
        if name.startswith("_has:"):
            return self._has(types, name, value, depth)
        head, _, rest = name.partition(".")
        code, _, modifier = head.partition(":")
        param = self._param(types, code)
        if param is None:
            self.drop(name, f"unknown search parameter for {'/'.join(types) or 'this search'}")
            return None
        if param.type == "special":
            self.drop(name, "special search parameters are not supported")
            return None
        values = split_values(value)
        if len(values) > MAX_VALUES:
            raise errors.invalid(f"{name} has {len(values)} alternatives; at most {MAX_VALUES} are allowed", name)
        if rest:  # chained: `subject:Patient.name=x`
            return self._chain(param, modifier or None, name, rest, value, depth)
        target_type = None
        if modifier:
            if param.type == "reference" and modifier in self.known_types:
                if param.targets and modifier not in param.targets:
                    raise errors.invalid(f"{name}: {code} cannot refer to a {modifier}", name)
                target_type, modifier = modifier, ""
            elif modifier not in MODIFIERS.get(param.type, frozenset()):
                self.drop(name, f"modifier :{modifier} is not supported on {param.type} parameters")
                return None
            elif modifier == "of-type" and code != "identifier":
                self.drop(name, ":of-type applies to identifier parameters only")
                return None
        if modifier == "missing" and values not in (("true",), ("false",)):
            raise errors.invalid(f"{name} takes true or false", name)
        if not any(values):
            raise errors.invalid(f"{name} has no value", name)
        return Criterion(name, param, modifier or None, values, target_type=target_type)

    def _chain(self, param: SearchParam, qualifier: str | None, name: str, rest: str, value: str,
               depth: int) -> Criterion | None:
        if param.type != "reference":
            raise errors.invalid(f"{name}: only reference parameters can be chained", name)
        if depth + 1 > MAX_CHAIN_DEPTH or rest.count(".") + depth + 1 > MAX_CHAIN_DEPTH:
            raise errors.invalid(f"{name}: chains may be at most {MAX_CHAIN_DEPTH} links long", name)
        if qualifier:
            if qualifier not in self.known_types:
                raise errors.invalid(f"{name}: '{qualifier}' is not a resource type", name)
            targets: tuple[str, ...] = (qualifier,)
        else:
            targets = tuple(t for t in param.targets if t in self.known_types)
        inner_code = rest.split(".", 1)[0].split(":", 1)[0]
        usable = tuple(t for t in targets if self.registry.get(t, inner_code) is not None)
        if not usable:
            raise errors.invalid(f"{name}: no resource type that {param.code} refers to has a parameter "
                                 f"'{inner_code}'", name)
        inner = self._criterion(usable if len(usable) == 1 else usable[:1], rest, value, depth + 1)
        if inner is None:
            return None
        link = ChainLink(param, usable)
        return Criterion(name, inner.param, inner.modifier, inner.values, (link, *inner.chain), inner.has,
                         inner.target_type)

    def _has(self, types: tuple[str, ...], name: str, value: str, depth: int) -> Criterion | None:
        # _has:Observation:patient:code=1234  |  _has:Observation:patient:_has:AuditEvent:entity:agent=x
        parts = name.split(":", 3)
        if len(parts) < 4 or not parts[1] or not parts[2] or not parts[3]:
            raise errors.invalid(f"{name}: _has takes the form _has:Type:reference:parameter", name)
        if depth + 1 > MAX_CHAIN_DEPTH:
            raise errors.invalid(f"{name}: _has may be nested at most {MAX_CHAIN_DEPTH} deep", name)
        _, source, ref_code, inner_name = parts
        if source not in self.known_types:
            raise errors.invalid(f"{name}: '{source}' is not a resource type", name)
        reference = self.registry.get(source, ref_code)
        if reference is None or reference.type != "reference":
            raise errors.invalid(f"{name}: {source} has no reference parameter '{ref_code}'", name)
        if types and reference.targets and not set(types) & set(reference.targets):
            raise errors.invalid(f"{name}: {source}.{ref_code} cannot refer to {'/'.join(types)}", name)
        inner = self._criterion((source,), inner_name, value, depth + 1)
        if inner is None:
            return None
        return Criterion(name, None, None, (), has=Has(source, reference, inner))

    def _include(self, name: str, value: str, reverse: bool) -> Include | None:
        modifier = name.partition(":")[2]
        if modifier not in ("", "iterate", "recurse"):
            raise errors.invalid(f"{name}: unknown modifier :{modifier}", name)
        iterate = modifier in ("iterate", "recurse")
        if value == "*":
            return Include("*", None, None, iterate, reverse)
        parts = value.split(":")
        if len(parts) not in (2, 3):
            raise errors.invalid(f"{name}={value}: use Type:parameter[:TargetType] or *", name)
        source, code = parts[0], parts[1]
        target = parts[2] if len(parts) == 3 else None
        if source not in self.known_types:
            raise errors.invalid(f"{name}={value}: '{source}' is not a resource type", name)
        if target is not None and target not in self.known_types:
            raise errors.invalid(f"{name}={value}: '{target}' is not a resource type", name)
        param = self.registry.get(source, code)
        if param is None or param.type != "reference":
            raise errors.invalid(f"{name}={value}: {source} has no reference parameter '{code}'", name)
        return Include(source, param, target, iterate, reverse)

    def _sort(self, types: tuple[str, ...], value: str) -> tuple[SortKey, ...]:
        keys = []
        for item in (v.strip() for v in value.split(",")):
            if not item:
                continue
            descending = item.startswith("-")
            code = item.lstrip("-")
            if code == "_id":
                keys.append(SortKey(None, descending, code))
                continue
            param = self._param(types, code) if types else None
            if param is None or param.type in ("composite", "special"):
                raise errors.invalid(f"_sort: cannot sort by '{code}'", "_sort")
            keys.append(SortKey(param, descending, code))
        if len(keys) > 5:
            raise errors.invalid("_sort: at most 5 sort keys", "_sort")
        return tuple(keys)
