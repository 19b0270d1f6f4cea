"""token parameters: codes, identifiers, contact points and coded primitives as `code` and `system|code`.

Storing both forms makes every token search an equality on one multikey index: `code` matches any
system, `system|code` one system, `|code` no system. `system|` alone is a string range over the second
form. Texts for `:text` go to `tx`, identifier types for `:of-type` to `ot`.
"""

from __future__ import annotations

from typing import Any

from fhir_server.search.fhirpath import Node
from fhir_server.search.index.encode import Encoded, dedupe, esc, listed, norm


class _Tokens:
    __slots__ = ("ix", "ot", "sk", "tx")

    def __init__(self) -> None:
        self.ix: list[str] = []
        self.tx: list[str] = []
        self.ot: list[str] = []
        self.sk: str | None = None

    def pair(self, system: Any, code: Any) -> None:
        if type(code) is not str or not code:
            return
        code = esc(code)
        self.ix.append(code)
        self.ix.append(f"{esc(system) if type(system) is str else ''}|{code}")
        if self.sk is None:
            self.sk = code

    def text(self, text: Any) -> None:
        if type(text) is str:
            normalised = norm(text)
            if normalised:
                self.tx.append(normalised)

    def coding(self, coding: Any) -> None:
        if type(coding) is dict:
            self.pair(coding.get("system"), coding.get("code"))
            self.text(coding.get("display"))

    def concept(self, concept: dict[str, Any]) -> None:
        for coding in listed(concept.get("coding")):
            self.coding(coding)
        self.text(concept.get("text"))

    def identifier(self, identifier: dict[str, Any]) -> None:
        value = identifier.get("value")
        self.pair(identifier.get("system"), value)
        kind = identifier.get("type")
        if type(kind) is not dict:
            return
        self.text(kind.get("text"))
        if type(value) is str and value:
            for coding in listed(kind.get("coding")):
                if type(coding) is dict and type(coding.get("code")) is str:
                    system = coding.get("system")
                    self.ot.append(f"{esc(system) if type(system) is str else ''}|{esc(coding['code'])}|{esc(value)}")


def values(nodes: list[Node]) -> Encoded | None:
    """`ix`: `code` and `system|code` per coded value; `tx`: texts; `ot`: identifier type|value."""
    tokens = _Tokens()
    for node in nodes:
        value = node.value
        kind = node.fhir_type
        if type(value) is dict:
            if kind == "CodeableConcept":
                tokens.concept(value)
            elif kind == "Coding":
                tokens.coding(value)
            elif kind == "Identifier":
                tokens.identifier(value)
            elif kind == "ContactPoint":
                tokens.pair(value.get("system"), value.get("value"))
            elif kind == "Reference" and type(value.get("identifier")) is dict:
                tokens.identifier(value["identifier"])
        elif type(value) is bool:
            tokens.pair(None, "true" if value else "false")
        elif type(value) is str:  # code, id, string, uri... primitives
            tokens.pair(None, value)
        elif type(value) is int:  # custom parameters on integer elements
            tokens.pair(None, str(value))
    if not tokens.ix and not tokens.tx:  # a text-only CodeableConcept still answers `:text`
        return None
    extra: dict[str, list[Any]] = {}
    if tokens.tx:
        extra["tx"] = dedupe(tokens.tx)
    if tokens.ot:
        extra["ot"] = dedupe(tokens.ot)
    return Encoded(dedupe(tokens.ix), tokens.sk, extra)
