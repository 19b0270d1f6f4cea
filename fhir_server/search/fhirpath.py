"""A compiled FHIRPath subset for search-parameter expressions, with `fhirpathpy` as the fallback.

Why not `fhirpathpy` for everything: extraction runs on every write, for every parameter of the type
(Observation has ~45), and a general FHIRPath interpreter costs tens of microseconds per expression
before any value is found. The official R4 expressions use a small subset (paths, unions, `as`,
`where(resolve() is T)`, `where(field='x')`, `[0]`, `exists()`), so they are compiled once into closures
that walk the JSON directly. The element tables (`model/structure.py`) supply each selected value's FHIR
type, which extraction needs to encode it (a `Period` and a `dateTime` both index as date ranges, but
differently) and which resolves choice elements (`Observation.value` → `valueQuantity`, ...).

Expressions outside the subset (custom SearchParameters) are evaluated by `fhirpathpy`; their FHIR
types are guessed from the JSON shape.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from fhir_server.model.structure import load_tables


@dataclass(frozen=True, slots=True)
class Node:
    """One selected value: the JSON value and its FHIR type name.

    `fhir_type` is a primitive (`dateTime`, `code`), a datatype (`CodeableConcept`), a backbone element's
    path (`Observation.component`) or, for a resource, its resource type.
    """

    value: Any
    fhir_type: str


class FhirPathUnsupported(ValueError):
    """The expression is outside the compiled subset (compile_expression then uses fhirpathpy)."""


# A compiled expression: (focus collection, root resource node) -> selected nodes.
Evaluator = Callable[[list[Node], Node], list[Node]]

_NOT_DOMAIN = frozenset({"Bundle", "Binary", "Parameters"})
_SUBTYPES: dict[str, frozenset[str]] = {
    "Quantity": frozenset({"Quantity", "Age", "Count", "Distance", "Duration", "SimpleQuantity", "MoneyQuantity"}),
    "string": frozenset({"string", "code", "id", "markdown"}),
    "uri": frozenset({"uri", "url", "canonical", "oid", "uuid"}),
    "integer": frozenset({"integer", "positiveInt", "unsignedInt"}),
}
_SYSTEM_TYPES = {"String": "string", "Boolean": "boolean", "Integer": "integer", "Decimal": "decimal",
                 "Date": "date", "DateTime": "dateTime", "Time": "time"}


def _type_set(name: str) -> frozenset[str]:
    """The FHIR type names a type specifier (`Quantity`, `DateTime`, `FHIR.string`...) accepts."""
    for prefix in ("FHIR.", "System."):
        if name.startswith(prefix):
            name = name[len(prefix):]
    name = _SYSTEM_TYPES.get(name, name)
    return _SUBTYPES.get(name, frozenset({name}))


class Compiled:
    """A compiled expression: call it with a resource, or `evaluate` it on any focus (composites)."""

    __slots__ = ("evaluate", "expression", "fast")

    def __init__(self, expression: str, fast: bool, evaluate: Evaluator) -> None:
        self.expression = expression
        self.fast = fast
        self.evaluate = evaluate

    def __call__(self, resource: dict[str, Any]) -> list[Node]:
        root = Node(resource, resource.get("resourceType", ""))
        return self.evaluate([root], root)

    def __repr__(self) -> str:
        return f"Compiled({self.expression!r}, fast={self.fast})"


def compile_expression(expression: str, resource_type: str | None = None) -> Compiled:
    """Compile `expression`: the fast path when possible, else a `fhirpathpy` evaluation.

    With `resource_type`, union branches that start at another resource type are dropped at compile time
    (`Patient.name | Practitioner.name` for a Patient keeps only the first).
    """
    try:
        return compile_fast(expression, resource_type)
    except FhirPathUnsupported:
        return Compiled(expression, False, _fallback(expression))


def compile_fast(expression: str, resource_type: str | None = None) -> Compiled:
    """Compile on the fast path only; raises `FhirPathUnsupported` outside the subset."""
    ast = _Parser(expression).parse()
    return Compiled(expression, True, _compile(ast, resource_type))


# ------------------------------------------------------------------------------------------- parsing

_TOKEN = re.compile(
    r"\s+|(?P<str>'(?:[^'\\]|\\.)*')|(?P<num>\d+(?:\.\d+)?)|(?P<id>[A-Za-z_][A-Za-z0-9_]*|`[^`]+`)"
    r"|(?P<var>[%$][A-Za-z_][A-Za-z0-9_]*)|(?P<op>!=|<=|>=|!~|[|.()\[\],=<>+\-*/&~])"
)
_ESCAPES = {"'": "'", '"': '"', "`": "`", "\\": "\\", "/": "/", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}

# AST: plain tuples, tag first.
Ast = tuple[Any, ...]


def _unescape(body: str) -> str:
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), body)


class _Parser:
    """Recursive descent over the FHIRPath precedence levels the subset needs."""

    def __init__(self, text: str) -> None:
        self.tokens: list[tuple[str, Any]] = []
        pos = 0
        while pos < len(text):
            match = _TOKEN.match(text, pos)
            if match is None:
                raise FhirPathUnsupported(f"unexpected character at {pos}: {text[pos:pos + 10]!r}")
            pos = match.end()
            kind = match.lastgroup
            if kind is None:
                continue
            token = match.group(kind)
            if kind == "str":
                self.tokens.append(("str", _unescape(token[1:-1])))
            elif kind == "num":
                self.tokens.append(("num", Decimal(token) if "." in token else int(token)))
            elif kind == "id":
                self.tokens.append(("id", token.strip("`")))
            else:
                self.tokens.append((kind, token))
        self.pos = 0

    def peek(self, offset: int = 0) -> tuple[str, Any]:
        index = self.pos + offset
        return self.tokens[index] if index < len(self.tokens) else ("end", None)

    def take(self) -> tuple[str, Any]:
        token = self.peek()
        self.pos += 1
        return token

    def expect(self, kind: str, value: Any = None) -> Any:
        token = self.take()
        if token[0] != kind or (value is not None and token[1] != value):
            raise FhirPathUnsupported(f"expected {value or kind}, found {token[1]!r}")
        return token[1]

    def parse(self) -> Ast:
        ast = self.expression()
        if self.peek()[0] != "end":
            raise FhirPathUnsupported(f"unexpected {self.peek()[1]!r}")
        return ast

    def expression(self) -> Ast:
        left = self.conjunction()
        while self.peek() == ("id", "or"):
            self.take()
            left = ("or", left, self.conjunction())
        if self.peek() in (("id", "xor"), ("id", "implies")):
            raise FhirPathUnsupported(f"operator {self.peek()[1]}")
        return left

    def conjunction(self) -> Ast:
        left = self.equality()
        while self.peek() == ("id", "and"):
            self.take()
            left = ("and", left, self.equality())
        return left

    def equality(self) -> Ast:
        left = self.union()
        if self.peek() in (("op", "="), ("op", "!=")):
            negate = self.take()[1] == "!="
            left = ("eq", left, self.union(), negate)
        if self.peek()[0] == "op" and self.peek()[1] in ("<", ">", "<=", ">=", "~", "!~"):
            raise FhirPathUnsupported(f"operator {self.peek()[1]}")
        return left

    def union(self) -> Ast:
        branches = [self.typed()]
        while self.peek() == ("op", "|"):
            self.take()
            branches.append(self.typed())
        return branches[0] if len(branches) == 1 else ("union", tuple(branches))

    def typed(self) -> Ast:
        ast = self.postfix()
        while self.peek() in (("id", "as"), ("id", "is")):
            operator = self.take()[1]
            ast = (operator, ast, self.type_name())
        if self.peek()[0] == "op" and self.peek()[1] in ("+", "-", "*", "/", "&"):
            raise FhirPathUnsupported(f"operator {self.peek()[1]}")
        return ast

    def type_name(self) -> str:
        parts = [self.expect("id")]
        while self.peek() == ("op", ".") and self.peek(1)[0] == "id":
            self.take()
            parts.append(self.expect("id"))
        return ".".join(parts)

    def postfix(self) -> Ast:
        ast = self.term()
        while True:
            if self.peek() == ("op", "."):
                self.take()
                ast = self.invocation(ast)
            elif self.peek() == ("op", "["):
                self.take()
                index = self.expect("num")
                self.expect("op", "]")
                if not isinstance(index, int):
                    raise FhirPathUnsupported("non-integer index")
                ast = ("index", ast, index)
            else:
                return ast

    def term(self) -> Ast:
        kind, value = self.peek()
        if kind == "op" and value == "(":
            self.take()
            ast = self.expression()
            self.expect("op", ")")
            return ast
        if kind == "str":
            self.take()
            return ("lit", value, "string")
        if kind == "num":
            self.take()
            return ("lit", value, "decimal" if isinstance(value, Decimal) else "integer")
        if kind == "id" and value in ("true", "false"):
            self.take()
            return ("lit", value == "true", "boolean")
        if kind == "var":
            self.take()
            if value in ("%resource", "%rootResource"):
                return ("resource",)
            if value == "$this":
                return ("this",)
            raise FhirPathUnsupported(f"variable {value}")
        if kind == "id":
            return self.invocation(None)
        raise FhirPathUnsupported(f"unexpected {value!r}")

    def invocation(self, base: Ast | None) -> Ast:
        name = self.expect("id")
        if self.peek() != ("op", "("):
            return ("head", name) if base is None else ("member", base, name)
        self.take()
        args: list[Ast] = []
        if self.peek() != ("op", ")"):
            args.append(self.expression())
            while self.peek() == ("op", ","):
                self.take()
                args.append(self.expression())
        self.expect("op", ")")
        return ("call", base, name, tuple(args))


# ----------------------------------------------------------------------------------------- compiling


def _empty(focus: list[Node], root: Node) -> list[Node]:
    return []


def _identity(focus: list[Node], root: Node) -> list[Node]:
    return focus


def _is_resource_node(node: Node) -> bool:
    return type(node.value) is dict and "resourceType" in node.value


def _compile(ast: Ast, resource_type: str | None) -> Evaluator:
    tag = ast[0]
    if tag in ("member", "as", "call") and resource_type is not None:
        static = _static_path(ast, resource_type)
        if static is not None:
            return static
    if tag == "head":
        return _head(ast[1], resource_type)
    if tag == "member":
        return _member(_compile(ast[1], resource_type), ast[2], None)
    if tag == "union":
        kept = [branch for branch in ast[1] if not _foreign(branch, resource_type)]
        return _union([b for b in (_compile(branch, resource_type) for branch in kept) if b is not _empty])
    if tag == "as":
        return _as(ast[1], _type_set(ast[2]), resource_type)
    if tag == "is":
        return _is(_compile(ast[1], resource_type), _type_set(ast[2]))
    if tag == "index":
        return _index(_compile(ast[1], resource_type), ast[2])
    if tag == "call":
        return _call(ast, resource_type)
    if tag == "lit":
        constant = [Node(ast[1], ast[2])]
        return lambda focus, root: constant
    if tag == "resource":
        return lambda focus, root: [root]
    if tag == "this":
        return _identity
    if tag in ("and", "or"):
        return _logic(tag, _compile(ast[1], resource_type), _compile(ast[2], resource_type))
    if tag == "eq":
        return _equals(_compile(ast[1], resource_type), _compile(ast[2], resource_type), ast[3])
    raise FhirPathUnsupported(f"construct {tag}")  # pragma: no cover - the parser makes no other tags


def _foreign(ast: Ast, resource_type: str | None) -> bool:
    """True when the path starts at another resource type than the one compiled for (a union branch
    such as `Condition.code` in an expression compiled for Observation)."""
    if resource_type is None:
        return False
    while ast[0] in ("member", "as", "is", "index", "call") and ast[1] is not None:
        ast = ast[1]
    if ast[0] != "head" or not ast[1][:1].isupper():
        return False
    name = ast[1]
    if name == "DomainResource":
        return resource_type in _NOT_DOMAIN
    return name not in (resource_type, "Resource")


def _as_step(ast: Ast) -> tuple[Ast, str, frozenset[str]] | None:
    """(base, member name, types) when `ast` is `base.name as T` or `base.name.as(T)`."""
    if ast[0] == "as" and ast[1][0] == "member":
        return ast[1][1], ast[1][2], _type_set(ast[2])
    if (ast[0] == "call" and ast[2] in ("as", "ofType") and ast[1] is not None and ast[1][0] == "member"
            and len(ast[3]) == 1 and ast[3][0][0] in ("head", "member")):
        return ast[1][1], ast[1][2], _type_set(_dotted(ast[3][0]))
    return None


def _static_path(ast: Ast, resource_type: str) -> Evaluator | None:
    """`Type.a.b.c` (with `as` filters) from the resource itself, typed entirely at compile time.

    The common case by far. Intermediate steps walk plain JSON values with no type lookups or Node
    objects; only the last step's values become Nodes. None when the chain is not fully typed (choice
    or contained-resource steps mid-path, a custom type the tables do not know): the dynamic path then
    handles it.
    """
    steps: list[tuple[str, frozenset[str] | None]] = []
    while ast[0] != "head":
        typed = _as_step(ast)
        if typed is not None:
            ast, member_name, types = typed
            steps.append((member_name, types))
        elif ast[0] == "member":
            steps.append((ast[2], None))
            ast = ast[1]
        else:
            return None
    head = ast[1]
    if head not in (resource_type, "Resource", "DomainResource") or not steps:
        return None
    if head == "DomainResource" and resource_type in _NOT_DOMAIN:
        return None
    steps.reverse()
    keys: list[str] = []
    parent = resource_type
    tables = load_tables()
    for name, only in steps[:-1]:
        entries = _entries(parent, name, only)
        if len(entries) != 1 or entries[0][1] not in tables.nodes:
            return None
        keys.append(entries[0][0])
        parent = entries[0][1]
    name, only = steps[-1]
    last = _entries(parent, name, only)
    if parent not in tables.nodes or (only is not None and any(not kind for _, kind in last)):
        return None
    return _walk(resource_type, tuple(keys), last)


def _walk(resource_type: str, keys: tuple[str, ...], last: _Entries) -> Evaluator:
    """The evaluator of a fully typed path: plain dict walking, Nodes only for what the last step selects."""
    if not keys and len(last) == 1:  # `Type.element`, most parameters: one lookup on the resource
        (key, kind), = last

        def element(focus: list[Node], root: Node) -> list[Node]:
            if len(focus) == 1:
                node = focus[0]
                item = node.value.get(key) if node.fhir_type == resource_type else None
                if item is None:
                    return []
                if type(item) is list:
                    return [Node(i, kind or infer_type(i)) for i in item if i is not None]
                return [Node(item, kind or infer_type(item))]
            return _select([n.value for n in focus if n.fhir_type == resource_type], keys, last)

        return element

    def walk(focus: list[Node], root: Node) -> list[Node]:
        return _select([n.value for n in focus if n.fhir_type == resource_type], keys, last)

    return walk


def _select(values: list[Any], keys: tuple[str, ...], last: _Entries) -> list[Node]:
    for key in keys:
        found: list[Any] = []
        for value in values:
            item = value.get(key)
            if item is None:
                continue
            if type(item) is list:
                found.extend(i for i in item if type(i) is dict)
            elif type(item) is dict:
                found.append(item)
        if not found:
            return []
        values = found
    out: list[Node] = []
    for value in values:
        for key, kind in last:
            item = value.get(key)
            if item is None:
                continue
            if type(item) is list:
                out.extend(Node(i, kind or infer_type(i)) for i in item if i is not None)
            else:
                out.append(Node(item, kind or infer_type(item)))
    return out


def _head(name: str, resource_type: str | None) -> Evaluator:
    """A leading identifier: a type name (`Observation`, `Resource`) filters the focus; else a member."""
    if not name[:1].isupper():
        return _member(_identity, name, None)
    if name == "Resource":
        return lambda focus, root: [n for n in focus if _is_resource_node(n)]
    if name == "DomainResource":
        return lambda focus, root: [n for n in focus if _is_resource_node(n) and n.fhir_type not in _NOT_DOMAIN]
    if resource_type is not None and name != resource_type:
        return _empty
    return lambda focus, root: [n for n in focus if n.fhir_type == name]


def _union(branches: list[Evaluator]) -> Evaluator:
    if not branches:
        return _empty
    if len(branches) == 1:
        return branches[0]

    def union(focus: list[Node], root: Node) -> list[Node]:
        out: list[Node] = []
        for branch in branches:
            out.extend(branch(focus, root))
        return out

    return union


_Entries = tuple[tuple[str, str], ...]  # (JSON key, FHIR type; "" = guess from the value)


def _entries(parent_type: str, name: str, only: frozenset[str] | None) -> _Entries:
    """The JSON keys `name` selects on `parent_type`: one property, or every member of a choice group."""
    node = load_tables().nodes.get(parent_type)
    if node is None:  # a type the tables do not describe (custom resource): read the key, guess types
        choices = tuple((name + kind[0].upper() + kind[1:], kind) for kind in sorted(only or ()))
        return (*choices, (name, ""))
    prop = node.props.get(name)
    if prop is not None:
        found = [(prop.name, prop.type)]
    else:
        found = [(p.name, p.type) for p in node.props.values() if p.group == name]
    # "Resource" properties (contained, Bundle.entry.resource) are typed per value by its resourceType.
    found = [(key, "" if kind == "Resource" else kind) for key, kind in found]
    return tuple((key, kind) for key, kind in found if only is None or not kind or kind in only)


def _member(base: Evaluator, name: str, only: frozenset[str] | None) -> Evaluator:
    """`base.name`: each focus object's property, flattened; types from the element tables (cached)."""
    cache: dict[str, _Entries] = {}

    def member(focus: list[Node], root: Node) -> list[Node]:
        out: list[Node] = []
        for node in base(focus, root):
            value = node.value
            if type(value) is not dict:
                continue
            entries = cache.get(node.fhir_type)
            if entries is None:
                entries = cache[node.fhir_type] = _entries(node.fhir_type, name, only)
            for key, kind in entries:
                found = value.get(key)
                if found is None:
                    continue
                if type(found) is list:
                    for item in found:
                        if item is not None:
                            out.append(Node(item, kind or infer_type(item)))
                else:
                    out.append(Node(found, kind or infer_type(found)))
        if only is not None and out:
            out = [n for n in out if n.fhir_type in only]
        return out

    return member


def _as(base_ast: Ast, types: frozenset[str], resource_type: str | None) -> Evaluator:
    """`X as T` / `X.as(T)`: on a member, only T's choice keys are read; otherwise a type filter."""
    if base_ast[0] == "member":
        return _member(_compile(base_ast[1], resource_type), base_ast[2], types)
    if base_ast[0] == "head" and not base_ast[1][:1].isupper():
        return _member(_identity, base_ast[1], types)
    base = _compile(base_ast, resource_type)
    return lambda focus, root: [n for n in base(focus, root) if n.fhir_type in types]


def _is(base: Evaluator, types: frozenset[str]) -> Evaluator:
    def is_type(focus: list[Node], root: Node) -> list[Node]:
        found = base(focus, root)
        return [Node(found[0].fhir_type in types, "boolean")] if len(found) == 1 else []

    return is_type


def _index(base: Evaluator, index: int) -> Evaluator:
    def item(focus: list[Node], root: Node) -> list[Node]:
        found = base(focus, root)
        return [found[index]] if index < len(found) else []

    return item


def _boolean(nodes: list[Node]) -> bool | None:
    """FHIRPath singleton evaluation of a collection as a boolean (empty → unknown)."""
    if not nodes:
        return None
    if len(nodes) == 1:
        return nodes[0].value if type(nodes[0].value) is bool else True
    return None  # FHIRPath makes this an error; as a search filter "unknown" is the safe reading


def _logic(operator: str, left: Evaluator, right: Evaluator) -> Evaluator:
    """Three-valued `and` / `or`."""

    def logic(focus: list[Node], root: Node) -> list[Node]:
        a, b = _boolean(left(focus, root)), _boolean(right(focus, root))
        if operator == "and":
            result = False if a is False or b is False else (True if a and b else None)
        else:
            result = True if a is True or b is True else (False if a is False and b is False else None)
        return [] if result is None else [Node(result, "boolean")]

    return logic


def _same(a: Any, b: Any) -> bool:
    if type(a) is bool or type(b) is bool:
        return type(a) is type(b) and a == b
    return bool(a == b)


def _equals(left: Evaluator, right: Evaluator, negate: bool) -> Evaluator:
    def equals(focus: list[Node], root: Node) -> list[Node]:
        a, b = left(focus, root), right(focus, root)
        if not a or not b:
            return []
        same = len(a) == len(b) and all(_same(x.value, y.value) for x, y in zip(a, b, strict=True))
        return [Node(same != negate, "boolean")]

    return equals


def _reference_type(value: Any) -> str:
    """The resource type a Reference (or a bare reference string) points at, or ""."""
    if type(value) is dict:
        reference = value.get("reference")
        if type(reference) is not str:
            kind = value.get("type")
            return kind if type(kind) is str and "/" not in kind else ""
    elif type(value) is str:
        reference = value
    else:
        return ""
    if reference.startswith("#") or reference.startswith("urn:"):
        return ""
    parts = reference.split("?", 1)[0].split("/")
    if len(parts) >= 4 and parts[-2] == "_history":
        parts = parts[:-2]
    return parts[-2] if len(parts) >= 2 else ""


def _call(ast: Ast, resource_type: str | None) -> Evaluator:
    _, base_ast, name, args = ast
    base = _identity if base_ast is None else _compile(base_ast, resource_type)
    if name in ("as", "ofType") and len(args) == 1 and args[0][0] in ("head", "member"):
        types = _type_set(_dotted(args[0]))
        if base_ast is None:
            return lambda focus, root: [n for n in focus if n.fhir_type in types]
        return _as(base_ast, types, resource_type)
    if name == "is" and len(args) == 1 and args[0][0] in ("head", "member"):
        return _is(base, _type_set(_dotted(args[0])))
    if name == "where" and len(args) == 1:
        return _where(base, args[0])
    if name == "extension" and len(args) == 1 and args[0][0] == "lit" and isinstance(args[0][1], str):
        url = args[0][1]
        extensions = _member(base, "extension", None)
        return lambda focus, root: [n for n in extensions(focus, root)
                                    if type(n.value) is dict and n.value.get("url") == url]
    if name in ("first", "last", "exists", "empty", "not") and not args:
        return _simple_function(base, name)
    if name == "exists" and len(args) == 1:
        filtered = _where(base, args[0])
        return lambda focus, root: [Node(bool(filtered(focus, root)), "boolean")]
    raise FhirPathUnsupported(f"function {name}()")


def _dotted(ast: Ast) -> str:
    if ast[0] == "head":
        return str(ast[1])
    return f"{_dotted(ast[1])}.{ast[2]}"


def _simple_function(base: Evaluator, name: str) -> Evaluator:
    if name == "first":
        return lambda focus, root: base(focus, root)[:1]
    if name == "last":
        return lambda focus, root: base(focus, root)[-1:]
    if name == "exists":
        return lambda focus, root: [Node(bool(base(focus, root)), "boolean")]
    if name == "empty":
        return lambda focus, root: [Node(not base(focus, root), "boolean")]

    def negation(focus: list[Node], root: Node) -> list[Node]:
        value = _boolean(base(focus, root))
        return [] if value is None else [Node(not value, "boolean")]

    return negation


def _where(base: Evaluator, criterion: Ast) -> Evaluator:
    """`where(...)`: `resolve() is T` keeps references to T (no resolution: the reference names the type)."""
    if criterion[0] == "is" and criterion[1] == ("call", None, "resolve", ()):
        types = _type_set(criterion[2])

        def resolves_to(focus: list[Node], root: Node) -> list[Node]:
            return [n for n in base(focus, root)
                    if (n.fhir_type in types if _is_resource_node(n) else _reference_type(n.value) in types)]

        return resolves_to
    test = _compile(criterion, None)

    def where(focus: list[Node], root: Node) -> list[Node]:
        out: list[Node] = []
        for node in base(focus, root):
            result = test([node], root)
            if len(result) == 1 and result[0].value is True:
                out.append(node)
        return out

    return where


# ------------------------------------------------------------------------------------------ fallback

_DATE_SHAPE = re.compile(r"-?\d{4}(-\d{2}(-\d{2}(T[\d:.]+(Z|[+-]\d{2}:\d{2})?)?)?)?")


def infer_type(value: Any) -> str:
    """A FHIR type guessed from a JSON value's shape (for values the element tables cannot type)."""
    if type(value) is bool:
        return "boolean"
    if type(value) is int:
        return "integer"
    if isinstance(value, (Decimal, float)):
        return "decimal"
    if type(value) is str:
        if _DATE_SHAPE.fullmatch(value):
            return "dateTime" if "T" in value else "date"
        return "uri" if "://" in value or value.startswith("urn:") else "string"
    if type(value) is not dict:
        return ""
    if "resourceType" in value:
        return str(value["resourceType"])
    keys = value.keys()
    if "coding" in keys or keys == {"text"}:
        return "CodeableConcept"
    if "reference" in keys or ("identifier" in keys and keys <= {"identifier", "display", "type", "id"}):
        return "Reference"
    if "currency" in keys:
        return "Money"
    number = value.get("value")
    if type(number) in (int, Decimal, float) and keys <= _QUANTITY_KEYS:
        return "Quantity"
    if "low" in keys or "high" in keys:
        return "Range"
    if "start" in keys or "end" in keys:
        return "Period"
    if "family" in keys or "given" in keys:
        return "HumanName"
    if keys & {"line", "city", "postalCode", "country", "district", "state"}:
        return "Address"
    if "system" in keys and "value" in keys:
        return "ContactPoint" if value.get("system") in _CONTACT_SYSTEMS else "Identifier"
    if "value" in keys:
        return "Identifier"
    if "code" in keys:
        return "Coding"
    if "event" in keys or "repeat" in keys:
        return "Timing"
    return ""


_QUANTITY_KEYS = frozenset({"value", "unit", "code", "system", "comparator", "id", "extension"})
_CONTACT_SYSTEMS = frozenset({"phone", "fax", "email", "pager", "url", "sms", "other"})


def _fallback(expression: str) -> Evaluator:
    """Evaluate with fhirpathpy; a failure on one resource selects nothing rather than failing the write."""
    from fhirpathpy import compile as fhirpath_compile
    from fhirpathpy.models import models

    _check_syntax(expression)
    try:
        evaluator = fhirpath_compile(expression, model=models["r4"])
    except Exception as exc:  # noqa: BLE001 - fhirpathpy raises bare Exceptions for what it cannot build
        raise FhirPathUnsupported(f"not a FHIRPath expression fhirpathpy can evaluate: {exc}") from exc

    def evaluate(focus: list[Node], root: Node) -> list[Node]:
        out: list[Node] = []
        for node in focus:
            try:
                found = evaluator(node.value, {"resource": root.value, "rootResource": root.value})
            except Exception:  # noqa: BLE001 - a custom expression must not break writes
                continue
            for value in found:
                if isinstance(value, float):
                    value = Decimal(str(value))
                if value is not None:
                    out.append(Node(value, infer_type(value)))
        return out

    return evaluate


def _check_syntax(expression: str) -> None:
    """fhirpathpy's parser recovers from syntax errors silently (and fails later, per resource); parse
    with the same grammar but an error listener that raises, so a bad custom expression is refused once."""
    from antlr4 import CommonTokenStream, InputStream, Token
    from antlr4.error.ErrorListener import ErrorListener
    from fhirpathpy.parser.generated.FHIRPathLexer import FHIRPathLexer
    from fhirpathpy.parser.generated.FHIRPathParser import FHIRPathParser

    class Raise(ErrorListener):  # type: ignore[misc]
        def syntaxError(self, recognizer: Any, symbol: Any, line: int, column: int, msg: str, e: Any) -> None:
            raise FhirPathUnsupported(f"syntax error at column {column + 1}: {msg}")

    lexer = FHIRPathLexer(InputStream(expression))
    lexer.removeErrorListeners()
    lexer.addErrorListener(Raise())
    parser = FHIRPathParser(CommonTokenStream(lexer))
    parser.removeErrorListeners()
    parser.addErrorListener(Raise())
    parser.expression()
    if parser.getCurrentToken().type != Token.EOF:
        raise FhirPathUnsupported(f"unexpected text after the expression: {parser.getCurrentToken().text!r}")


def check_expression(expression: str) -> bool:
    """True when the expression compiles (fast path or fhirpathpy); False when neither can parse it."""
    try:
        compile_expression(expression)
    except FhirPathUnsupported:
        return False
    return True
