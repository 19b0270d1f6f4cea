"""reference parameters: the target as `Type/id` (or the absolute URL / canonical as written).

References to this server are stored relative whatever form they were written in, so `subject=Patient/1`
matches `Patient/1`, `http://this-server/fhir/Patient/1` and `Patient/1/_history/2` alike. Canonicals are
stored bare and with their version (`url|1.0`) so either search finds them. Contained references (`#x`)
point inside the resource and are not searchable as references.
"""

from __future__ import annotations

from typing import Any

from fhir_server.search.fhirpath import Node
from fhir_server.search.index.encode import Encoded, dedupe, esc


def normalise(reference: str, server_bases: tuple[str, ...]) -> str | None:
    """The stored form of a Reference.reference string, or None for a contained (`#x`) reference."""
    if not reference or reference.startswith("#"):
        return None
    if "://" in reference:
        for base in server_bases:
            if reference.startswith(base) and reference[len(base):len(base) + 1] == "/":
                return _drop_history(reference[len(base) + 1:])
        return reference
    if reference.startswith("urn:"):
        return reference
    return _drop_history(reference)


def _drop_history(reference: str) -> str:
    index = reference.find("/_history/")
    return reference[:index] if index > 0 else reference


def _identifier_tokens(identifier: Any, out: list[str]) -> None:
    if type(identifier) is not dict:
        return
    value = identifier.get("value")
    if type(value) is str and value:
        system = identifier.get("system")
        out.append(esc(value))
        out.append(f"{esc(system) if type(system) is str else ''}|{esc(value)}")


def values(nodes: list[Node], server_bases: tuple[str, ...] = ()) -> Encoded | None:
    """`ix`: reference strings; `ri`: Reference.identifier as token strings (for `:identifier`).

    `server_bases` are this server's base URLs without a trailing slash.
    """
    ix: list[str] = []
    ri: list[str] = []
    for node in nodes:
        value = node.value
        kind = node.fhir_type
        if type(value) is dict:
            if kind == "Reference":
                reference = value.get("reference")
                if type(reference) is str:
                    stored = normalise(reference, server_bases)
                    if stored is not None:
                        ix.append(stored)
                _identifier_tokens(value.get("identifier"), ri)
            elif "resourceType" in value and type(value.get("id")) is str:  # Bundle.entry[0].resource
                ix.append(f"{value['resourceType']}/{value['id']}")
        elif type(value) is str and value:
            if kind == "canonical" and "|" in value:
                url = value.rsplit("|", 1)[0]
                ix.append(url)
                ix.append(value)
            elif kind == "string":  # a bare reference string (custom parameters)
                stored = normalise(value, server_bases)
                if stored is not None:
                    ix.append(stored)
            else:  # canonical, uri, url, oid, uuid: as written
                ix.append(value)
    if not ix and not ri:
        return None
    ix = dedupe(ix)
    return Encoded(ix, ix[0] if ix else None, {"ri": dedupe(ri)} if ri else {})
