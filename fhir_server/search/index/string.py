"""string parameters: every text part of the selected elements, normalised (`ix`), as short prefixes
(`ixp`) and as written (`ex`).

Why parts: FHIR string search matches the start of any part of a name or address ("Jim" finds given
"Jim", "Win" finds family "Windsor"), so each part is stored on its own, normalised, with its prefixes.
"""

from __future__ import annotations

from typing import Any

from fhir_server.search.fhirpath import Node
from fhir_server.search.index.encode import Encoded, dedupe, listed, norm, prefixes

_NAME_PARTS = (("text", False), ("family", False), ("given", True), ("prefix", True), ("suffix", True))
_ADDRESS_PARTS = (("text", False), ("line", True), ("city", False), ("district", False), ("state", False),
                  ("postalCode", False), ("country", False))
_CONCEPT_PARTS = (("text", False),)


def _collect(value: dict[str, Any], fields: tuple[tuple[str, bool], ...], out: list[str]) -> None:
    for key, many in fields:
        found = value.get(key)
        if found is None:
            continue
        if many and type(found) is list:
            out.extend(item for item in found if type(item) is str)
        elif type(found) is str:
            out.append(found)


def parts(nodes: list[Node]) -> list[str]:
    """The strings a string parameter indexes, as written."""
    out: list[str] = []
    for node in nodes:
        value = node.value
        if type(value) is str:
            out.append(value)
        elif type(value) is dict:
            kind = node.fhir_type
            if kind == "HumanName":
                _collect(value, _NAME_PARTS, out)
            elif kind == "Address":
                _collect(value, _ADDRESS_PARTS, out)
            elif kind == "CodeableConcept":  # custom parameters only: the text and the codings' displays
                _collect(value, _CONCEPT_PARTS, out)
                for coding in listed(value.get("coding")):
                    if type(coding) is dict and type(coding.get("display")) is str:
                        out.append(coding["display"])
    return out


def values(nodes: list[Node]) -> Encoded | None:
    """`ix`: normalised parts; `ixp`: their short prefixes (for starts-with); `ex`: the parts as written
    (for `:exact`); sort key: the first normalised part."""
    written = parts(nodes)
    normalised = dedupe([n for n in map(norm, written) if n])
    if not normalised:
        return None
    return Encoded(normalised, normalised[0], {"ixp": prefixes(normalised), "ex": dedupe(written)})
