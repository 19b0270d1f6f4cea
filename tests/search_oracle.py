"""An independent oracle for search tests: the test data set and FHIR R4 search semantics written from the
specification (search.html) in plain Python. Nothing here imports `fhir_server`: the point is a second
opinion worked out by a different route from the server's (which extracts with FHIRPath, encodes and
queries MongoDB).

Data: every official R4 example (tests/…/shared/fhir/r4-examples) and a few Synthea patients, whose
`urn:uuid` transaction entries become PUTs with the uuid as id and `Type/uuid` references.
"""

from __future__ import annotations

import gzip
import json
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

SHARED = Path(__file__).resolve().parents[2] / "shared" / "fhir"
EXAMPLES = SHARED / "r4-examples"
SYNTHEA = SHARED / "synthea"
# Five small Synthea patients (~550 resources): enough volume for paging and sorting, quick to load.
SYNTHEA_PATIENTS = (
    "Stanley_Balistreri_08ce8462-f56a-4fd6-b986-ea75c5c6edb2",
    "Joaquin_Rodriguez_69ee9841-f4a6-427a-a2fd-f5a891682057",
    "Geoffrey_Abbott_73a7d6b7-0310-4fff-9b0b-7891a5e390f5",
    "Chet_Thompson_eda17701-070d-4fae-9f7d-c8cd6263b63a",
    "Royal_DuBuque_6d750ddc-ee20-40df-bf83-30461dc641e4",
)


# ---------------------------------------------------------------------------------------------- data set

@dataclass
class Dataset:
    """`bodies`: (type, id, JSON bytes to PUT) in load order; `resources[type][id]`: the parsed resource
    (decimals as Decimal) as the server will hold it, apart from `meta.versionId`/`lastUpdated`."""

    bodies: list[tuple[str, str, bytes]] = field(default_factory=list)
    resources: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    synthea_patients: list[str] = field(default_factory=list)
    examples: dict[str, set[str]] = field(default_factory=dict)  # type -> ids of the official examples

    def add(self, resource_type: str, id: str, body: bytes) -> None:
        self.bodies.append((resource_type, id, body))
        self.resources.setdefault(resource_type, {})[id] = json.loads(body, parse_float=Decimal)

    def of(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return self.resources.get(resource_type, {})

    def where(self, resource_type: str, predicate: Callable[[dict[str, Any]], bool]) -> set[str]:
        return {id for id, r in self.of(resource_type).items() if predicate(r)}

    def get(self, reference: str) -> dict[str, Any] | None:
        if reference.count("/") != 1:
            return None
        resource_type, id = reference.split("/")
        return self.of(resource_type).get(id)


_URN = re.compile(r'"reference": "urn:uuid:([0-9a-f-]+)"')


def _synthea(dataset: Dataset, stem: str) -> None:
    with gzip.open(SYNTHEA / f"{stem}.json.gz") as stream:
        bundle = json.load(stream)
    types = {e["fullUrl"]: e["resource"]["resourceType"] for e in bundle["entry"]}
    for entry in bundle["entry"]:
        resource = entry["resource"]
        assert entry["fullUrl"] == f"urn:uuid:{resource['id']}"
        text = _URN.sub(lambda m: f'"reference": "{types["urn:uuid:" + m.group(1)]}/{m.group(1)}"',
                        json.dumps(resource))
        dataset.add(resource["resourceType"], resource["id"], text.encode())
        if resource["resourceType"] == "Patient":
            dataset.synthea_patients.append(resource["id"])


def load_dataset() -> Dataset:
    dataset = Dataset()
    for path in sorted(EXAMPLES.glob("*.json")):
        raw = path.read_bytes()
        head = json.loads(raw)
        dataset.add(head["resourceType"], head["id"], raw)
        dataset.examples.setdefault(head["resourceType"], set()).add(head["id"])
    for stem in SYNTHEA_PATIENTS:
        _synthea(dataset, stem)
    return dataset


# ---------------------------------------------------------------------------------------------- walking

def items(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def walk(node: Any, path: str) -> list[Any]:
    """Follow a dotted path through objects and arrays (arrays flatten), like a simple FHIRPath."""
    current = items(node)
    for part in path.split("."):
        nxt: list[Any] = []
        for item in current:
            if isinstance(item, dict) and part in item:
                nxt.extend(items(item[part]))
        current = nxt
    return current


def choice(node: dict[str, Any], stem: str) -> tuple[str, Any] | None:
    """The `stem[x]` element of `node` as (type suffix, value), e.g. ("DateTime", "2024-…")."""
    for key, value in node.items():
        if key.startswith(stem) and key[len(stem):][:1].isupper():
            return key[len(stem):], value
    return None


# ---------------------------------------------------------------------------------------------- escaping

def split(text: str, separator: str) -> list[str]:
    """Split on `separator` where no backslash escapes it (search.html#escaping); escapes are kept."""
    parts, current, escaped = [], "", False
    for char in text:
        if escaped:
            current += char
            escaped = False
        elif char == "\\":
            current += char
            escaped = True
        elif char == separator:
            parts.append(current)
            current = ""
        else:
            current += char
    return [*parts, current]


def unescape(text: str) -> str:
    return re.sub(r"\\([\\,$|])", r"\1", text)


# ---------------------------------------------------------------------------------------------- string

def norm(text: str) -> str:
    """Case- and accent-insensitive form (search.html#string: "ignore case and accents")."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
    stripped = "".join(c for c in unicodedata.normalize("NFKD", stripped) if not unicodedata.combining(c))
    return " ".join(stripped.split())


def name_parts(name: dict[str, Any]) -> list[str]:
    """The strings of a HumanName that `name` searches (text, family, given, prefix, suffix)."""
    return [s for s in [name.get("text"), name.get("family"), *items(name.get("given")),
                        *items(name.get("prefix")), *items(name.get("suffix"))] if isinstance(s, str)]


def address_parts(address: dict[str, Any]) -> list[str]:
    return [s for s in [address.get("text"), *items(address.get("line")), address.get("city"),
                        address.get("district"), address.get("state"), address.get("postalCode"),
                        address.get("country")] if isinstance(s, str)]


def starts(strings: Iterable[str], value: str) -> bool:
    needle = norm(value)
    return any(norm(s).startswith(needle) for s in strings)


def contains(strings: Iterable[str], value: str) -> bool:
    needle = norm(value)
    return any(needle in norm(s) for s in strings)


# ---------------------------------------------------------------------------------------------- token

def codings(concepts: Iterable[Any]) -> Iterator[tuple[str | None, str]]:
    """(system, code) of each Coding in CodeableConcepts or Codings."""
    for concept in concepts:
        if not isinstance(concept, dict):
            continue
        for coding in items(concept.get("coding")) if "coding" in concept else [concept]:
            if isinstance(coding, dict) and isinstance(coding.get("code"), str):
                yield coding.get("system"), coding["code"]


def identifiers(values: Iterable[Any]) -> Iterator[tuple[str | None, str]]:
    for identifier in values:
        if isinstance(identifier, dict) and isinstance(identifier.get("value"), str):
            yield identifier.get("system"), identifier["value"]


def token_match(pairs: Iterable[tuple[str | None, str]], value: str) -> bool:
    """search.html#token: `code`, `system|code`, `|code` (no system), `system|` (any code in system)."""
    pairs = list(pairs)
    parts = split(value, "|")
    if len(parts) == 1:
        return any(code == unescape(value) for _, code in pairs)
    system, code = unescape(parts[0]), unescape("|".join(parts[1:]))
    if not system:
        return any(s is None and c == code for s, c in pairs)
    if not code:
        return any(s == system for s, _ in pairs)
    return any(s == system and c == code for s, c in pairs)


# ---------------------------------------------------------------------------------------------- date

_DATE = re.compile(r"(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?"
                   r"(Z|[+-]\d{2}:\d{2})?)?)?)?")
MIN_TIME = datetime(1, 1, 1, tzinfo=UTC)
MAX_TIME = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)


def date_range(text: str) -> tuple[datetime, datetime]:
    """[start, end) that a FHIR date/dateTime/instant covers at its precision; no zone means UTC."""
    m = _DATE.fullmatch(text)
    if not m:
        raise ValueError(text)
    y, mo, d, hh, mi, ss, frac, tz = m.groups()
    zone = UTC
    if tz and tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        zone = timezone(sign * timedelta(hours=int(tz[1:3]), minutes=int(tz[4:6])))
    micro = int((frac or "0")[:6].ljust(6, "0"))
    start = datetime(int(y), int(mo or 1), int(d or 1), int(hh or 0), int(mi or 0), int(ss or 0), micro,
                     tzinfo=zone)
    if frac:
        end = start + timedelta(microseconds=10 ** (6 - min(len(frac), 6)))
    elif ss:
        end = start + timedelta(seconds=1)
    elif mi:
        end = start + timedelta(minutes=1)
    elif d:
        end = start + timedelta(days=1)
    elif mo:
        end = start.replace(year=start.year + (start.month == 12), month=start.month % 12 + 1)
    else:
        end = start.replace(year=start.year + 1)
    return start.astimezone(UTC), end.astimezone(UTC)


def period_range(period: dict[str, Any]) -> tuple[datetime, datetime] | None:
    """A Period: start's start to end's end; an open side is unbounded (search.html#date)."""
    start, end = period.get("start"), period.get("end")
    if start is None and end is None:
        return None
    return (date_range(start)[0] if start else MIN_TIME, date_range(end)[1] if end else MAX_TIME)


def ranges(values: Iterable[Any]) -> list[tuple[datetime, datetime]]:
    """Ranges of date strings and Periods (anything else ignored)."""
    out = []
    for value in values:
        if isinstance(value, str):
            out.append(date_range(value))
        elif isinstance(value, dict) and ("start" in value or "end" in value):
            found = period_range(value)
            if found:
                out.append(found)
    return out


AP_FACTOR = Decimal("0.1")  # search.html#prefix: `ap` is "recommended" as 10% (of the gap to now, for dates)


def date_prefix(prefix: str, target: tuple[datetime, datetime], search: tuple[datetime, datetime]) -> bool:
    """search.html#prefix for ranges: the target value's range against the search value's range."""
    lo, hi = target
    slo, shi = search
    if prefix == "ap":
        now = datetime.now(UTC)
        gap = max(abs(now - slo), abs(now - shi)) * float(AP_FACTOR)
        return lo < shi + gap and hi > slo - gap
    contained = slo <= lo and hi <= shi
    if prefix == "eq":
        return contained
    if prefix == "ne":
        return not contained
    if prefix == "gt":
        return hi > shi  # the range above the search value intersects the target
    if prefix == "lt":
        return lo < slo
    if prefix == "ge":
        return hi > shi or contained
    if prefix == "le":
        return lo < slo or contained
    if prefix == "sa":
        return lo >= shi
    if prefix == "eb":
        return hi <= slo
    raise ValueError(prefix)


def date_match(values: Iterable[Any], search: str) -> bool:
    prefix, text = (search[:2], search[2:]) if search[:2].isalpha() else ("eq", search)
    wanted = date_range(text)
    found = ranges(values)
    if prefix == "ne":  # no value equals the search value
        return bool(found) and not any(date_prefix("eq", r, wanted) for r in found)
    return any(date_prefix(prefix, r, wanted) for r in found)


# ---------------------------------------------------------------------------------------------- number

def implicit_range(text: str) -> tuple[Decimal, Decimal]:
    """search.html#number: `100` stands for [99.5, 100.5), `1.50` for [1.495, 1.505)."""
    number = Decimal(text)
    exponent = number.as_tuple().exponent
    assert isinstance(exponent, int)
    half = Decimal(5).scaleb(exponent - 1)
    return number - half, number + half


def number_prefix(prefix: str, value: Decimal, text: str) -> bool:
    number = Decimal(text)
    lo, hi = implicit_range(text)
    if prefix == "ap":
        return abs(value - number) <= abs(number) * AP_FACTOR
    return {"eq": lo <= value < hi, "ne": not lo <= value < hi, "gt": value > number, "lt": value < number,
            "ge": value >= number, "le": value <= number, "sa": value > number, "eb": value < number}[prefix]


def number_match(values: Iterable[Any], search: str) -> bool:
    prefix, text = (search[:2], search[2:]) if search[:2].isalpha() else ("eq", search)
    numbers = [Decimal(v) for v in values if isinstance(v, (int, Decimal)) and not isinstance(v, bool)]
    return any(number_prefix(prefix, v, text) for v in numbers)


# UCUM units this oracle converts (a small table, enough for the data used): unit -> (dimension, factor).
UCUM_UNITS = {
    "1": ("1", Decimal(1)), "%": ("%", Decimal(1)),  # the server keeps % apart from unity (docs)
    "g": ("g", Decimal(1)), "kg": ("g", Decimal(1000)), "mg": ("g", Decimal("0.001")), "ug": ("g", Decimal("1e-6")),
    "pg": ("g", Decimal("1e-12")),
    "[lb_av]": ("g", Decimal("453.59237")),
    "m": ("m", Decimal(1)), "cm": ("m", Decimal("0.01")), "mm": ("m", Decimal("0.001")),
    "[in_i]": ("m", Decimal("0.0254")),
    "L": ("L", Decimal(1)), "dL": ("L", Decimal("0.1")), "mL": ("L", Decimal("0.001")), "uL": ("L", Decimal("1e-6")),
    "s": ("s", Decimal(1)), "min": ("s", Decimal(60)), "h": ("s", Decimal(3600)), "d": ("s", Decimal(86400)),
    "wk": ("s", Decimal(604800)), "a": ("s", Decimal(31557600)),
}


def ucum(unit: str) -> tuple[str, Decimal] | None:
    """(dimension, factor to base units) of a simple unit or a quotient of two (`g/dL`)."""
    if unit in UCUM_UNITS:
        return UCUM_UNITS[unit]
    if re.fullmatch(r"\{[^{}]*\}", unit):  # an annotation alone is the unity
        return UCUM_UNITS["1"]
    if unit.count("/") == 1:
        top, bottom = unit.split("/")
        if top in UCUM_UNITS and bottom in UCUM_UNITS:
            return (f"{UCUM_UNITS[top][0]}/{UCUM_UNITS[bottom][0]}", UCUM_UNITS[top][1] / UCUM_UNITS[bottom][1])
    return None


def quantity_values(quantities: Iterable[Any]) -> list[dict[str, Any]]:
    return [q for q in quantities if isinstance(q, dict) and isinstance(q.get("value"), (int, Decimal))
            and not isinstance(q.get("value"), bool)]


def quantity_match(quantities: Iterable[Any], search: str) -> bool:
    """search.html#quantity: `[prefix]number|system|code`, `number||code` (code or unit), `number`.
    With the UCUM system and units that convert, values are compared after conversion."""
    parts = search.split("|")
    head = parts[0]
    prefix, text = (head[:2], head[2:]) if head[:2].isalpha() else ("eq", head)
    for q in quantity_values(quantities):
        value = Decimal(q["value"])
        if len(parts) == 1:
            if number_prefix(prefix, value, text):
                return True
            continue
        system, code = parts[1], parts[2]
        wanted, have = ucum(code), ucum(q.get("code") or "")
        if system == UCUM and q.get("system") == UCUM and wanted and have and wanted[0] == have[0]:
            # the search value's precision is in the search unit: compare in that unit
            if number_prefix(prefix, value * have[1] / wanted[1], text):
                return True
            continue
        if system and (q.get("system") != system or q.get("code") != code):
            continue
        if not system and code not in (q.get("code"), q.get("unit")):
            continue
        if number_prefix(prefix, value, text):
            return True
    return False


UCUM = "http://unitsofmeasure.org"


# ---------------------------------------------------------------------------------------------- params

def ch(resource: Any, stem: str, *kinds: str) -> list[Any]:
    """Values of the choice element `stem[x]` (only the listed type suffixes, if any), array items flattened."""
    out = []
    for node in items(resource):
        if not isinstance(node, dict):
            continue
        for key, value in node.items():
            suffix = key[len(stem):]
            if key.startswith(stem) and suffix[:1].isupper() and (not kinds or suffix in kinds):
                out.extend(items(value))
    return out


def refs_to(resource_type: str, references: Iterable[Any]) -> list[Any]:
    """`x.where(resolve() is Type)`: the references that name that type."""
    return [r for r in references if isinstance(r, dict) and isinstance(r.get("reference"), str)
            and r["reference"].split("/")[-2:-1] == [resource_type]]


def _names(r: dict[str, Any]) -> list[str]:
    return [p for n in items(r.get("name")) if isinstance(n, dict) for p in name_parts(n)]


def _addresses(r: dict[str, Any]) -> list[str]:
    return [p for a in items(r.get("address")) if isinstance(a, dict) for p in address_parts(a)]


def _telecom(system: str) -> Callable[[dict[str, Any]], list[Any]]:
    return lambda r: [t for t in items(r.get("telecom")) if isinstance(t, dict) and t.get("system") == system]


def _deceased(r: dict[str, Any]) -> list[Any]:
    """`Patient.deceased.exists() and Patient.deceased != false`: a boolean for every patient."""
    value = ch(r, "deceased")
    return [bool(value) and value != [False]]


def _timing_dates(timings: Iterable[Any]) -> list[Any]:
    out: list[Any] = []
    for timing in timings:
        if isinstance(timing, dict):
            out.extend(items(timing.get("event")))
            bounds = (timing.get("repeat") or {}).get("boundsPeriod")
            if bounds:
                out.append(bounds)
    return out


P = tuple  # (kind, extractor, reference targets)
COMMON: dict[str, P] = {
    "_id": ("token", lambda r: [r["id"]], ()),
    "_tag": ("token", lambda r: walk(r, "meta.tag"), ()),
    "_security": ("token", lambda r: walk(r, "meta.security"), ()),
    "_profile": ("uri", lambda r: walk(r, "meta.profile"), ()),
    "_source": ("uri", lambda r: walk(r, "meta.source"), ()),
}
PERSON = {
    "name": ("string", _names, ()),
    "family": ("string", lambda r: walk(r, "name.family"), ()),
    "given": ("string", lambda r: walk(r, "name.given"), ()),
    "address": ("string", _addresses, ()),
    "address-city": ("string", lambda r: walk(r, "address.city"), ()),
    "address-state": ("string", lambda r: walk(r, "address.state"), ()),
    "address-postalcode": ("string", lambda r: walk(r, "address.postalCode"), ()),
    "address-country": ("string", lambda r: walk(r, "address.country"), ()),
    "address-use": ("token", lambda r: walk(r, "address.use"), ()),
    "gender": ("token", lambda r: walk(r, "gender"), ()),
    "identifier": ("token", lambda r: walk(r, "identifier"), ()),
    "active": ("token", lambda r: walk(r, "active"), ()),
    "telecom": ("token", lambda r: walk(r, "telecom"), ()),
    "phone": ("token", _telecom("phone"), ()),
    "email": ("token", _telecom("email"), ()),
}
SUBJECT = ("Group", "Patient")
PARAMS: dict[str, dict[str, P]] = {
    "Patient": {
        **PERSON,
        "deceased": ("token", _deceased, ()),
        "birthdate": ("date", lambda r: walk(r, "birthDate"), ()),
        "death-date": ("date", lambda r: ch(r, "deceased", "DateTime"), ()),
        "organization": ("reference", lambda r: walk(r, "managingOrganization"), ("Organization",)),
        "general-practitioner": ("reference", lambda r: walk(r, "generalPractitioner"),
                                 ("Practitioner", "Organization", "PractitionerRole")),
        "link": ("reference", lambda r: walk(r, "link.other"), ("Patient", "RelatedPerson")),
        "language": ("token", lambda r: walk(r, "communication.language"), ()),
    },
    "Practitioner": {**PERSON, "communication": ("token", lambda r: walk(r, "communication"), ())},
    "Organization": {
        "name": ("string", lambda r: walk(r, "name") + walk(r, "alias"), ()),
        "address": ("string", _addresses, ()),
        "address-city": ("string", lambda r: walk(r, "address.city"), ()),
        "address-country": ("string", lambda r: walk(r, "address.country"), ()),
        "identifier": ("token", lambda r: walk(r, "identifier"), ()),
        "type": ("token", lambda r: walk(r, "type"), ()),
        "active": ("token", lambda r: walk(r, "active"), ()),
        "partof": ("reference", lambda r: walk(r, "partOf"), ("Organization",)),
    },
    "Observation": {
        "code": ("token", lambda r: walk(r, "code"), ()),
        "category": ("token", lambda r: walk(r, "category"), ()),
        "status": ("token", lambda r: walk(r, "status"), ()),
        "identifier": ("token", lambda r: walk(r, "identifier"), ()),
        "subject": ("reference", lambda r: walk(r, "subject"), ("Group", "Device", "Patient", "Location")),
        "patient": ("reference", lambda r: refs_to("Patient", walk(r, "subject")), ("Patient",)),
        "encounter": ("reference", lambda r: walk(r, "encounter"), ("Encounter", "EpisodeOfCare")),
        "performer": ("reference", lambda r: walk(r, "performer"),
                      ("Practitioner", "Organization", "CareTeam", "Patient", "PractitionerRole", "RelatedPerson")),
        "has-member": ("reference", lambda r: walk(r, "hasMember"), ("Observation",)),
        "derived-from": ("reference", lambda r: walk(r, "derivedFrom"), ()),
        "date": ("date", lambda r: ch(r, "effective", "DateTime", "Period", "Instant")
                 + _timing_dates(ch(r, "effective", "Timing")), ()),
        "value-quantity": ("quantity", lambda r: ch(r, "value", "Quantity"), ()),
        "value-concept": ("token", lambda r: ch(r, "value", "CodeableConcept"), ()),
        "value-string": ("string", lambda r: ch(r, "value", "String") + walk(ch(r, "value", "CodeableConcept"), "text"),
                         ()),
        "value-date": ("date", lambda r: ch(r, "value", "DateTime", "Period"), ()),
        "combo-code": ("token", lambda r: walk(r, "code") + walk(r, "component.code"), ()),
        "component-code": ("token", lambda r: walk(r, "component.code"), ()),
        "data-absent-reason": ("token", lambda r: walk(r, "dataAbsentReason"), ()),
        "combo-data-absent-reason": ("token", lambda r: walk(r, "dataAbsentReason")
                                     + walk(r, "component.dataAbsentReason"), ()),
        "component-value-quantity": ("quantity", lambda r: ch(walk(r, "component"), "value", "Quantity"), ()),
        "combo-value-quantity": ("quantity", lambda r: ch(r, "value", "Quantity")
                                 + ch(walk(r, "component"), "value", "Quantity"), ()),
    },
    "Encounter": {
        "status": ("token", lambda r: walk(r, "status"), ()),
        "class": ("token", lambda r: walk(r, "class"), ()),
        "type": ("token", lambda r: walk(r, "type"), ()),
        "reason-code": ("token", lambda r: walk(r, "reasonCode"), ()),
        "identifier": ("token", lambda r: walk(r, "identifier"), ()),
        "subject": ("reference", lambda r: walk(r, "subject"), SUBJECT),
        "patient": ("reference", lambda r: refs_to("Patient", walk(r, "subject")), ("Patient",)),
        "participant": ("reference", lambda r: walk(r, "participant.individual"),
                        ("Practitioner", "PractitionerRole", "RelatedPerson")),
        "practitioner": ("reference", lambda r: refs_to("Practitioner", walk(r, "participant.individual")),
                         ("Practitioner",)),
        "service-provider": ("reference", lambda r: walk(r, "serviceProvider"), ("Organization",)),
        "date": ("date", lambda r: walk(r, "period"), ()),
        "length": ("quantity", lambda r: walk(r, "length"), ()),
    },
    "Condition": {
        "code": ("token", lambda r: walk(r, "code"), ()),
        "clinical-status": ("token", lambda r: walk(r, "clinicalStatus"), ()),
        "verification-status": ("token", lambda r: walk(r, "verificationStatus"), ()),
        "category": ("token", lambda r: walk(r, "category"), ()),
        "severity": ("token", lambda r: walk(r, "severity"), ()),
        "body-site": ("token", lambda r: walk(r, "bodySite"), ()),
        "subject": ("reference", lambda r: walk(r, "subject"), SUBJECT),
        "patient": ("reference", lambda r: refs_to("Patient", walk(r, "subject")), ("Patient",)),
        "encounter": ("reference", lambda r: walk(r, "encounter"), ("Encounter",)),
        "asserter": ("reference", lambda r: walk(r, "asserter"),
                     ("Practitioner", "Patient", "PractitionerRole", "RelatedPerson")),
        "onset-date": ("date", lambda r: ch(r, "onset", "DateTime", "Period"), ()),
        "abatement-date": ("date", lambda r: ch(r, "abatement", "DateTime", "Period"), ()),
        "recorded-date": ("date", lambda r: walk(r, "recordedDate"), ()),
        "onset-age": ("quantity", lambda r: ch(r, "onset", "Age"), ()),
        "abatement-age": ("quantity", lambda r: ch(r, "abatement", "Age"), ()),
        "onset-info": ("string", lambda r: ch(r, "onset", "String"), ()),
        "abatement-string": ("string", lambda r: ch(r, "abatement", "String"), ()),
    },
    "MedicationRequest": {
        "code": ("token", lambda r: ch(r, "medication", "CodeableConcept"), ()),
        "medication": ("reference", lambda r: ch(r, "medication", "Reference"), ("Medication",)),
        "status": ("token", lambda r: walk(r, "status"), ()),
        "intent": ("token", lambda r: walk(r, "intent"), ()),
        "category": ("token", lambda r: walk(r, "category"), ()),
        "priority": ("token", lambda r: walk(r, "priority"), ()),
        "identifier": ("token", lambda r: walk(r, "identifier"), ()),
        "subject": ("reference", lambda r: walk(r, "subject"), SUBJECT),
        "patient": ("reference", lambda r: refs_to("Patient", walk(r, "subject")), ("Patient",)),
        "requester": ("reference", lambda r: walk(r, "requester"),
                      ("Practitioner", "Organization", "Patient", "PractitionerRole", "RelatedPerson", "Device")),
        "encounter": ("reference", lambda r: walk(r, "encounter"), ("Encounter",)),
        "authoredon": ("date", lambda r: walk(r, "authoredOn"), ()),
        "date": ("date", lambda r: walk(r, "dosageInstruction.timing.event"), ()),
    },
    "Appointment": {
        "status": ("token", lambda r: walk(r, "status"), ()),
        "service-type": ("token", lambda r: walk(r, "serviceType"), ()),
        "appointment-type": ("token", lambda r: walk(r, "appointmentType"), ()),
        "specialty": ("token", lambda r: walk(r, "specialty"), ()),
        "part-status": ("token", lambda r: walk(r, "participant.status"), ()),
        "actor": ("reference", lambda r: walk(r, "participant.actor"),
                  ("Practitioner", "Device", "Patient", "HealthcareService", "PractitionerRole", "RelatedPerson",
                   "Location")),
        "patient": ("reference", lambda r: refs_to("Patient", walk(r, "participant.actor")), ("Patient",)),
        "practitioner": ("reference", lambda r: refs_to("Practitioner", walk(r, "participant.actor")),
                         ("Practitioner",)),
        "location": ("reference", lambda r: refs_to("Location", walk(r, "participant.actor")), ("Location",)),
        "date": ("date", lambda r: walk(r, "start"), ()),
    },
    "ServiceRequest": {
        "code": ("token", lambda r: walk(r, "code"), ()),
        "status": ("token", lambda r: walk(r, "status"), ()),
        "intent": ("token", lambda r: walk(r, "intent"), ()),
        "category": ("token", lambda r: walk(r, "category"), ()),
        "priority": ("token", lambda r: walk(r, "priority"), ()),
        "identifier": ("token", lambda r: walk(r, "identifier"), ()),
        "subject": ("reference", lambda r: walk(r, "subject"), ("Group", "Device", "Patient", "Location")),
        "patient": ("reference", lambda r: refs_to("Patient", walk(r, "subject")), ("Patient",)),
        "requester": ("reference", lambda r: walk(r, "requester"),
                      ("Practitioner", "Organization", "Patient", "PractitionerRole", "RelatedPerson", "Device")),
        "performer": ("reference", lambda r: walk(r, "performer"),
                      ("Practitioner", "Organization", "CareTeam", "HealthcareService", "Patient", "Device",
                       "PractitionerRole", "RelatedPerson")),
        "authored": ("date", lambda r: walk(r, "authoredOn"), ()),
        "occurrence": ("date", lambda r: ch(r, "occurrence", "DateTime", "Period")
                       + _timing_dates(ch(r, "occurrence", "Timing")), ()),
    },
    "Immunization": {
        "vaccine-code": ("token", lambda r: walk(r, "vaccineCode"), ()),
        "status": ("token", lambda r: walk(r, "status"), ()),
        "target-disease": ("token", lambda r: walk(r, "protocolApplied.targetDisease"), ()),
        "identifier": ("token", lambda r: walk(r, "identifier"), ()),
        "patient": ("reference", lambda r: walk(r, "patient"), ("Patient",)),
        "performer": ("reference", lambda r: walk(r, "performer.actor"),
                      ("Practitioner", "Organization", "PractitionerRole")),
        "manufacturer": ("reference", lambda r: walk(r, "manufacturer"), ("Organization",)),
        "encounter": ("reference", lambda r: walk(r, "encounter"), ("Encounter",)),
        "date": ("date", lambda r: ch(r, "occurrence", "DateTime"), ()),
        "lot-number": ("string", lambda r: walk(r, "lotNumber"), ()),
        "series": ("string", lambda r: walk(r, "protocolApplied.series"), ()),
    },
    "Procedure": {
        "code": ("token", lambda r: walk(r, "code"), ()),
        "status": ("token", lambda r: walk(r, "status"), ()),
        "category": ("token", lambda r: walk(r, "category"), ()),
        "reason-code": ("token", lambda r: walk(r, "reasonCode"), ()),
        "identifier": ("token", lambda r: walk(r, "identifier"), ()),
        "subject": ("reference", lambda r: walk(r, "subject"), SUBJECT),
        "patient": ("reference", lambda r: refs_to("Patient", walk(r, "subject")), ("Patient",)),
        "performer": ("reference", lambda r: walk(r, "performer.actor"),
                      ("Practitioner", "Organization", "Patient", "PractitionerRole", "RelatedPerson", "Device")),
        "encounter": ("reference", lambda r: walk(r, "encounter"), ("Encounter", "EpisodeOfCare")),
        "date": ("date", lambda r: ch(r, "performed", "DateTime", "Period"), ()),
        "instantiates-uri": ("uri", lambda r: walk(r, "instantiatesUri"), ()),
    },
    "Claim": {
        "patient": ("reference", lambda r: walk(r, "patient"), ("Patient",)),
        "insurer": ("reference", lambda r: walk(r, "insurer"), ("Organization",)),
        "use": ("token", lambda r: walk(r, "use"), ()),
    },
}


def param(resource_type: str, code: str) -> P | None:
    return PARAMS.get(resource_type, {}).get(code) or COMMON.get(code)


# ---------------------------------------------------------------------------------------------- matching

def token_parts(elements: Iterable[Any]) -> tuple[list[tuple[str | None, str]], list[str], list[tuple[str, str, str]]]:
    """(system, code) pairs, texts (for :text) and identifier types (for :of-type) of token elements:
    CodeableConcept, Coding, Identifier, ContactPoint, code/string/id primitives, booleans."""
    pairs: list[tuple[str | None, str]] = []
    texts: list[str] = []
    types: list[tuple[str, str, str]] = []
    for element in elements:
        if isinstance(element, bool):
            pairs.append((None, "true" if element else "false"))
        elif isinstance(element, str):
            pairs.append((None, element))
        elif isinstance(element, dict):
            if "coding" in element or ("text" in element and "value" not in element):
                for coding in items(element.get("coding")):
                    if isinstance(coding, dict) and isinstance(coding.get("code"), str):
                        pairs.append((coding.get("system"), coding["code"]))
                    if isinstance(coding, dict) and isinstance(coding.get("display"), str):
                        texts.append(coding["display"])
                if isinstance(element.get("text"), str):
                    texts.append(element["text"])
            elif "code" in element:  # Coding
                pairs.append((element.get("system"), element["code"]))
                if isinstance(element.get("display"), str):
                    texts.append(element["display"])
            elif isinstance(element.get("value"), str):  # Identifier or ContactPoint
                pairs.append((element.get("system"), element["value"]))
                kind = element.get("type")
                if isinstance(kind, dict):
                    if isinstance(kind.get("text"), str):
                        texts.append(kind["text"])
                    for coding in items(kind.get("coding")):
                        if isinstance(coding, dict) and isinstance(coding.get("code"), str):
                            types.append((coding.get("system") or "", coding["code"], element["value"]))
    return pairs, texts, types


def reference_strings(references: Iterable[Any]) -> list[str]:
    """The references as searchable strings: `Type/id` (a `_history` suffix dropped), absolute URLs and
    canonicals as written; contained (`#x`) references are not searchable."""
    out = []
    for reference in references:
        value = reference.get("reference") if isinstance(reference, dict) else reference
        if not isinstance(value, str) or value.startswith("#"):
            continue
        if "/_history/" in value:
            value = value.split("/_history/")[0]
        out.append(value)
    return out


def reference_match(references: list[Any], value: str, targets: tuple[str, ...], only: str | None) -> bool:
    strings = reference_strings(references)
    if "://" in value or value.startswith("urn:"):
        return value in strings
    if "/" in value:
        kind = value.split("/")[-2]
        return (only is None or kind == only) and "/".join(value.split("/")[-2:]) in strings
    kinds = (only,) if only else targets
    return any(f"{k}/{value}" in strings for k in kinds)


def uri_match(uris: list[str], value: str, modifier: str) -> bool:
    if modifier == "below":
        return any(u == value or u.startswith(value.rstrip("/") + "/") for u in uris)
    if modifier == "above":
        return any(value == u or value.startswith(u.rstrip("/") + "/") for u in uris)
    return value in uris


class Oracle:
    """Answers single-type searches over the data set: AND across parameters, OR across comma values,
    chains (`ref:Type.param`) and `_has`, with the semantics of search.html as read by this test suite."""

    def __init__(self, dataset: Dataset) -> None:
        self.data = dataset

    def search(self, resource_type: str, params: list[tuple[str, str]]) -> set[str]:
        return {id for id, r in self.data.of(resource_type).items()
                if all(self.matches(resource_type, r, name, value) for name, value in params)}

    def matches(self, resource_type: str, resource: dict[str, Any], name: str, value: str) -> bool:
        if name.startswith("_has:"):
            _, source, ref_code, inner = name.split(":", 3)
            kind, extract, targets = param(source, ref_code)  # type: ignore[misc]
            wanted = f"{resource_type}/{resource['id']}"
            return any(wanted in reference_strings(extract(other))
                       for id in self.search(source, [(inner, value)])
                       for other in [self.data.of(source)[id]])
        head, _, rest = name.partition(".")
        code, _, modifier = head.partition(":")
        if code in COMPOSITES.get(resource_type, {}):
            return any(composite_match(resource, code, v) for v in split(value, ","))
        kind, extract, targets = param(resource_type, code)  # type: ignore[misc]
        found = extract(resource)
        if rest:  # chain
            only = modifier or None
            for ref in reference_strings(found):
                if ref.count("/") != 1:
                    continue
                target_type, target_id = ref.split("/")
                if (only and target_type != only) or (not only and targets and target_type not in targets):
                    continue
                target = self.data.of(target_type).get(target_id)
                if target is not None and param(target_type, rest.split(".")[0].split(":")[0]) is not None \
                        and self.matches(target_type, target, rest, value):
                    return True
            return False
        if modifier == "missing":
            present = bool(self._present(kind, found))
            return present == (value == "false")
        values = split(value, ",")
        if kind == "token" and modifier == "not":
            pairs = token_parts(found)[0]
            return not any(token_match(pairs, v) for v in values)
        return any(self._one(kind, modifier, found, v, targets) for v in values)

    @staticmethod
    def _present(kind: str, found: list[Any]) -> list[Any]:
        if kind == "token":
            return token_parts(found)[0]
        if kind == "reference":
            return reference_strings(found)
        if kind == "quantity":
            return quantity_values(found)
        if kind == "date":
            return ranges(found)
        return [f for f in found if f not in (None, "")]

    def _one(self, kind: str, modifier: str, found: list[Any], value: str, targets: tuple[str, ...]) -> bool:
        if kind == "string":
            value = unescape(value)
            strings = [s for s in found if isinstance(s, str)]
            if modifier == "exact":
                return value in strings
            if modifier == "contains":
                return contains(strings, value)
            return starts(strings, value)
        if kind == "token":
            pairs, texts, types = token_parts(found)
            if modifier == "text":
                return starts(texts, value)
            if modifier == "of-type":
                return tuple(value.split("|", 2)) in types
            return token_match(pairs, value)
        if kind == "reference":
            if modifier == "identifier":
                return token_match(list(identifiers(walk(found, "identifier"))), value)
            return reference_match(found, value, targets, modifier or None)
        if kind == "date":
            return date_match(found, value)
        if kind == "number":
            return number_match(found, value)
        if kind == "quantity":
            return quantity_match(found, value)
        if kind == "uri":
            return uri_match([u for u in found if isinstance(u, str)], value, modifier)
        raise ValueError(kind)


# No official R4 number parameter applies to the types loaded here, so the suite registers two custom
# ones (search.html#custom) before loading: the number code paths are the same for every parameter.
CUSTOM_PARAMETERS = [
    {"resourceType": "SearchParameter", "id": "observation-value-number",
     "url": "http://example.org/fhir/SearchParameter/observation-value-number", "name": "ObservationValueNumber",
     "status": "active", "description": "The numeric value of Observation.valueQuantity", "code": "value-number",
     "base": ["Observation"], "type": "number", "expression": "(Observation.value as Quantity).value"},
    {"resourceType": "SearchParameter", "id": "immunization-dose-number",
     "url": "http://example.org/fhir/SearchParameter/immunization-dose-number", "name": "ImmunizationDoseNumber",
     "status": "active", "description": "Immunization.protocolApplied.doseNumber when it is a number",
     "code": "dose-number", "base": ["Immunization"], "type": "number",
     "expression": "Immunization.protocolApplied.doseNumber.as(positiveInt)"},
]
PARAMS["Observation"]["value-number"] = ("number", lambda r: walk(ch(r, "value", "Quantity"), "value"), ())
PARAMS["Immunization"]["dose-number"] = ("number", lambda r: ch(walk(r, "protocolApplied"), "doseNumber",
                                                                 "PositiveInt"), ())


# Observation's composites (search.html#composite): each `a$b` must hold on ONE element, the Observation
# itself (`code` + `value[x]`) or one of its components. code -> (elements, second component's kind).
COMPOSITES = {"Observation": {
    "code-value-quantity": ("self", "quantity"), "code-value-concept": ("self", "token"),
    "code-value-date": ("self", "date"), "code-value-string": ("self", "string"),
    "component-code-value-quantity": ("component", "quantity"),
    "component-code-value-concept": ("component", "token"),
    "combo-code-value-quantity": ("combo", "quantity"), "combo-code-value-concept": ("combo", "token"),
}}


def composite_match(resource: dict[str, Any], code: str, value: str) -> bool:
    which, kind = COMPOSITES["Observation"][code]
    first, second = split(value, "$")
    elements = {"self": [resource], "component": walk(resource, "component"),
                "combo": [resource, *walk(resource, "component")]}[which]
    for element in elements:
        if not token_match(token_parts(walk(element, "code"))[0], first):
            continue
        if kind == "quantity" and quantity_match(ch(element, "value", "Quantity"), second):
            return True
        if kind == "token" and token_match(token_parts(ch(element, "value", "CodeableConcept"))[0], second):
            return True
        if kind == "date" and date_match(ch(element, "value", "DateTime", "Period"), second):
            return True
        if kind == "string" and starts([v for v in ch(element, "value", "String") if isinstance(v, str)], second):
            return True
    return False
