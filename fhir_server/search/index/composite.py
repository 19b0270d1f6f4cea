"""composite parameters: one entry per element the composite's expression selects, holding each
component's values encoded as that component's own parameter type.

Why per element: `code-value-quantity=8480-6$gt100` must match a code and a value of the *same*
observation component; entries `{c0: [...], c1: [...]}` let the read side ask that with one `$elemMatch`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from fhir_server.search.fhirpath import Compiled, Node
from fhir_server.search.index.encode import Encoded

# (the component's compiled expression, relative to the element; its parameter type's encoder)
Component = tuple[Compiled, Callable[[list[Node]], Encoded | None]]


def values(nodes: list[Node], root: Node, components: Sequence[Component],
           memo: dict[tuple[int, str, object], Encoded | None] | None = None) -> Encoded | None:
    """`ix`: `{"c0": [...], "c1": [...]}` per element whose every component has a value; no sort key.

    Every component is selected before any is encoded (most elements lack one, e.g. an Observation
    without a CodeableConcept value), and `memo` (one per resource) shares encodings between composites
    that repeat a component on the same element (`code` appears in eight Observation composites).
    """
    out: list[dict[str, list[object]]] = []
    for node in nodes:
        selected = []
        for expression, _ in components:
            found = expression.evaluate([node], root)
            if not found:
                break
            selected.append(found)
        else:
            entry: dict[str, list[object]] = {}
            for index, ((expression, encode), found) in enumerate(zip(components, selected, strict=True)):
                key = (id(node.value), expression.expression, encode)
                if memo is not None and key in memo:
                    encoded = memo[key]
                else:
                    encoded = encode(found)
                    if memo is not None:
                        memo[key] = encoded
                if encoded is None or not encoded.ix:
                    break
                entry[f"c{index}"] = encoded.ix
            else:
                out.append(entry)
    return Encoded(out) if out else None
