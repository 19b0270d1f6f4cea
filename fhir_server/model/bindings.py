"""Required value-set bindings: is a code one the R4 specification allows?

Why a precomputed file: expanding value sets needs the 20 MB of HL7 terminology bundles; the server only needs
the ~220 value sets that R4 elements bind with strength `required`, already expanded by
`tools/build_model_tables.py` into `terminology/required-bindings.json` (HL7 FHIR content, CC0-1.0). Value sets
that depend on external terminologies (MIME types, UCUM, ISO 4217, LOINC) are listed there under
`not_checked` and accepted as-is.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path


def _terminology_dir() -> Path:
    """terminology/ beside the package in a source checkout; `share/fhir-server/terminology` when installed
    from a wheel (pyproject's data-files), as in the Docker image."""
    source = Path(__file__).resolve().parents[2] / "terminology"
    if source.is_dir():
        return source
    return Path(sys.prefix) / "share" / "fhir-server" / "terminology"


BINDINGS_FILE = _terminology_dir() / "required-bindings.json"
_LISTED = 12  # allowed codes spelled out in a message when the value set is this small


@dataclass(frozen=True, slots=True)
class ValueSetCodes:
    """The expansion of one value set."""

    url: str
    by_system: dict[str, frozenset[str]]
    codes: frozenset[str]  # every code, whatever its system: what a `code`-typed element may hold

    def describe(self) -> str:
        """The value set and, when short, the codes it allows (clients fix typos faster with the list)."""
        if len(self.codes) <= _LISTED:
            return f"{self.url} ({', '.join(sorted(self.codes))})"
        return self.url


@dataclass(frozen=True, slots=True)
class RequiredBindings:
    """Expanded required value sets by canonical URL; URLs absent here are not checked."""

    value_sets: dict[str, ValueSetCodes]
    not_checked: dict[str, str]

    def code_problem(self, url: str, code: str) -> str | None:
        """Why a bare `code` value breaks the binding, or None when it is allowed (or the set is not checked)."""
        vs = self.value_sets.get(url)
        if vs is None or code in vs.codes:
            return None
        return f"{code!r} is not in the required value set {vs.describe()}"

    def coding_problem(self, url: str, system: object, code: object) -> str | None:
        """Why a Coding breaks the binding. Codings from systems the value set does not draw on are not judged:
        a CodeableConcept may carry translations, and the required set is checked on the codings it can judge."""
        vs = self.value_sets.get(url)
        if vs is None or not isinstance(system, str) or not isinstance(code, str):
            return None
        allowed = vs.by_system.get(system)
        if allowed is None or code in allowed:
            return None
        return f"{code!r} ({system}) is not in the required value set {vs.describe()}"


@cache
def load_required_bindings(path: Path = BINDINGS_FILE) -> RequiredBindings:
    """Load the generated expansions once per process."""
    data = json.loads(path.read_text(encoding="utf-8"))
    value_sets: dict[str, ValueSetCodes] = {}
    for url, systems in data["value_sets"].items():
        by_system = {system: frozenset(codes) for system, codes in systems.items()}
        value_sets[url] = ValueSetCodes(url, by_system, frozenset().union(*by_system.values()))
    not_checked = {url: entry["reason"] for url, entry in data["not_checked"].items()}
    return RequiredBindings(value_sets, not_checked)
