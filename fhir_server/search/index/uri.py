"""uri parameters: the URI exactly as written (FHIR uri search is exact, `:below`/`:above` by prefix)."""

from __future__ import annotations

from fhir_server.search.fhirpath import Node
from fhir_server.search.index.encode import Encoded, dedupe


def values(nodes: list[Node]) -> Encoded | None:
    """`ix`: each selected string (uri, url, canonical, oid, uuid); sort key: the first."""
    found = dedupe([node.value for node in nodes if type(node.value) is str and node.value])
    if not found:
        return None
    return Encoded(found, found[0])
