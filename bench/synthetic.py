"""Synthetic FHIR data for the benchmarks: clones of the Synthea patient records in shared/fhir/synthea.

Each *clone* is one whole Synthea record (a transaction Bundle: the Patient and every resource about
them, with the Organizations and Practitioners it references) given new ids, with every `urn:uuid:`
reference rewritten to `Type/<new id>`, and with the names and identifiers that searches select on varied
per clone, so a search for one clone's name, identifier or clinic finds that clone only, at every store
size:

- Patient: `name.family` is a made-up six-letter surname unique to the clone (`family(c)`); the
  identifiers' values are made unique (`identifier_value(c, system)`); `managingOrganization` and
  `generalPractitioner` point at the clone's first Organization and Practitioner (Synthea leaves them out;
  they give the chains `subject:Patient.organization.name` and `general-practitioner` something to follow).
- Organization: `name` is prefixed with a made-up clinic word unique to the clone (`clinic(c)`).
- Practitioner: `name.family` is suffixed with the clone number.
- Clinical resources (Observation, Encounter, Claim, …) keep their codes, values and dates: searches by
  code therefore match a share of the store that grows with it (a population query), while searches scoped
  to one patient match the same handful at every size.

`clones(start, count)` yields the clones as lists of `(resource_type, resource)`; `StoredDocs` turns a
resource into the current-version document and the history entry the server itself would write
(`rest.write.stamp`, `fhirjson.dumps`, `search.extract.Extractor`), for bulk loading with `insert_many`.
"""

from __future__ import annotations

import gzip
import random
import re
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from bson import Binary

from fhir_server import fhirjson
from fhir_server.db.mongo_store import (
    _sort_key,  # the history key the server writes (read-only use)
)
from fhir_server.rest.write import stamp
from fhir_server.search.extract import Extractor

ROOT = Path(__file__).resolve().parents[1]
SYNTHEA = ROOT.parent / "shared" / "fhir" / "synthea"

_SYLLABLES = ("ba", "be", "bo", "da", "di", "ka", "ke", "ko", "la", "le", "lo", "ma", "me", "mo", "na", "ne",
              "no", "pa", "se", "so", "ta", "te", "zi", "fu")
_WORDS = len(_SYLLABLES) ** 3  # 13,824 distinct three-syllable words
_URN = re.compile(r'"urn:uuid:([0-9a-fA-F-]{36})"')


def _word(n: int) -> str:
    n %= _WORDS
    a, rest = divmod(n, len(_SYLLABLES) ** 2)
    b, c = divmod(rest, len(_SYLLABLES))
    return _SYLLABLES[a] + _SYLLABLES[b] + _SYLLABLES[c]


def _spread(c: int, salt: int) -> int:
    """A bijection of clone numbers onto the word space (so neighbouring clones get unrelated words)."""
    return (c * 7919 + salt) % _WORDS  # 7919 is prime, coprime with 24**3


def family(c: int) -> str:
    """Clone `c`'s Patient surname: six letters, unique for the first 13,824 clones."""
    return _word(_spread(c, 17)).capitalize()


def clinic(c: int) -> str:
    """Clone `c`'s clinic word, the first word of its Organizations' names."""
    return _word(_spread(c, 5011)).capitalize()


def identifier_value(c: int, system: str) -> str:
    return f"{zlib.crc32(system.encode()) % 997:03d}-{c:07d}"


@dataclass(frozen=True)
class Template:
    """One Synthea record: its entries as (type, old id, JSON text of the resource without id/meta)."""

    name: str
    entries: tuple[tuple[str, str, str], ...]


@cache
def templates() -> tuple[Template, ...]:
    out = []
    for path in sorted(SYNTHEA.glob("*.json*")):
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        bundle = fhirjson.parse(data, 64)
        entries = []
        for entry in bundle.get("entry", []):
            resource = dict(entry["resource"])
            old = entry.get("fullUrl", "").removeprefix("urn:uuid:") or resource.get("id", "")
            resource.pop("id", None)
            resource.pop("meta", None)
            entries.append((resource["resourceType"], old, fhirjson.dumps(resource).decode()))
        out.append(Template(path.name, tuple(entries)))
    if not out:
        raise RuntimeError(f"no Synthea bundles in {SYNTHEA}")
    return tuple(out)


def resources_per_clone() -> float:
    ts = templates()
    return sum(len(t.entries) for t in ts) / len(ts)


def template_of(c: int) -> Template:
    ts = templates()
    return ts[c % len(ts)]


def clone(c: int, seed: int = 20261121) -> list[tuple[str, dict[str, Any]]]:
    """Clone number `c` (deterministic for a seed): [(type, resource with its new id), …], Patient first."""
    template = template_of(c)
    rng = random.Random(seed * 1_000_003 + c)
    new_ids = {old: str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _, old, _ in template.entries}
    types = {old: t for t, old, _ in template.entries}

    def rewrite(m: re.Match[str]) -> str:
        old = m.group(1)
        return f'"{types[old]}/{new_ids[old]}"' if old in new_ids else m.group(0)

    out: list[tuple[str, dict[str, Any]]] = []
    first: dict[str, str] = {}
    for resource_type, old, text in template.entries:
        resource = fhirjson.parse(_URN.sub(rewrite, text).encode(), 64)
        resource = {"resourceType": resource_type, "id": new_ids[old],
                    **{k: v for k, v in resource.items() if k != "resourceType"}}
        first.setdefault(resource_type, new_ids[old])
        if resource_type == "Organization" and isinstance(resource.get("name"), str):
            resource["name"] = f"{clinic(c)} {resource['name'].title()}"
        elif resource_type == "Practitioner":
            for name in resource.get("name", []):
                if "family" in name:
                    name["family"] = f"{name['family']}{c}"
        out.append((resource_type, resource))
    for resource_type, resource in out:
        if resource_type != "Patient":
            continue
        for name in resource.get("name", []):
            if name.get("use", "official") == "official" or "family" in name:
                name["family"] = family(c)
        for ident in resource.get("identifier", []):
            if "value" in ident:
                ident["value"] = identifier_value(c, ident.get("system", ""))
        if "Organization" in first:
            resource["managingOrganization"] = {"reference": f"Organization/{first['Organization']}"}
        if "Practitioner" in first:
            resource["generalPractitioner"] = [{"reference": f"Practitioner/{first['Practitioner']}"}]
    out.sort(key=lambda pair: pair[0] != "Patient")
    return out


def clones(start: int, count: int) -> Iterator[list[tuple[str, dict[str, Any]]]]:
    for c in range(start, start + count):
        yield clone(c)


class StoredDocs:
    """Builds what `MongoResourceStore._write` stores for a create (version 1, method POST): the current
    document `{_id, v, ts, m, raw, resource, ix…}` and the history entry `{_id, t, i, v, ts, k, m, raw}`.
    Timestamps start at `start` and step by one millisecond per resource, as a busy server's would."""

    def __init__(self, extractor: Extractor, start: datetime | None = None) -> None:
        self.extractor = extractor
        now = start or datetime.now(UTC) - timedelta(days=1)
        self.when = now.replace(microsecond=now.microsecond // 1000 * 1000)

    def build(self, resource_type: str, resource: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        self.when += timedelta(milliseconds=1)
        id = resource["id"]
        stored = stamp(resource, id, 1, self.when)
        raw = Binary(fhirjson.dumps(stored))
        index = self.extractor.extract(resource_type, stored)
        current = {"_id": id, "v": 1, "ts": self.when, "m": "POST", "raw": raw, "resource": stored, **index}
        key = f"{resource_type}/{id}/1"
        entry = {"_id": key, "t": resource_type, "i": id, "v": 1, "ts": self.when, "k": _sort_key(self.when, key),
                 "m": "POST", "raw": raw}
        return current, entry
