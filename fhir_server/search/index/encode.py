"""The encodings of docs/search.md that both sides compute, in one place so writes and reads agree.

`esc` makes `|` unambiguous inside token strings (`system|code`), so a code or system containing a `|`
cannot be confused with the separator. `norm` is what string search compares: accents, case and
whitespace do not matter in FHIR string search ("Zoë" finds "zoe"), so both the stored values and the
query are reduced to the same form. `prefixes` turns short starts-with searches into equalities (an
array field's range conditions may be met by different elements; an equality cannot).
`precision_range` is the implicit range of a decimal (100 means [99.5, 100.5)).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from decimal import Context, Decimal
from typing import Any

# String prefix search: `ixp.<code>` holds every prefix up to this many characters of each normalised
# value, so a short prefix search is an exact (index-served) match on an array field; a longer one matches
# its first PREFIX_LENGTH characters there and checks the rest against `ix.<code>`.
PREFIX_LENGTH = 4

# Decimal128 (how the store keeps a Decimal) holds 34 significant digits: compute and round to that.
DECIMAL128 = Context(prec=34)


def esc(value: str) -> str:
    """Escape `\\` and `|` so that `|` only ever means "separator" in token strings."""
    if "\\" in value or "|" in value:
        return value.replace("\\", "\\\\").replace("|", "\\|")
    return value


def listed(value: Any) -> list[Any]:
    """A JSON array's items, or nothing when the value is not an array (odd data must not break writes)."""
    return value if type(value) is list else []


def prefixes(values: list[str]) -> list[str]:
    """Every prefix of 1..PREFIX_LENGTH characters of each (normalised) value, without repeats."""
    out: list[str] = []
    seen: set[str] = set()
    for value in values:
        for end in range(1, min(len(value), PREFIX_LENGTH) + 1):
            head = value[:end]
            if head not in seen:
                seen.add(head)
                out.append(head)
    return out


def _strip_marks(value: str) -> str:
    decomposed = unicodedata.normalize("NFKD", value)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def norm(value: str) -> str:
    """NFKD, drop combining marks, casefold, collapse whitespace runs to one space, strip.

    ASCII text (most of it) skips the Unicode work. A second mark-stripping pass after casefolding
    catches the few characters whose case folding yields a decomposable form.
    """
    if value.isascii():
        return " ".join(value.lower().split())
    folded = _strip_marks(value).casefold()
    if not folded.isascii():
        folded = _strip_marks(folded)
    return " ".join(folded.split())


def as_decimal(value: Any) -> Decimal | None:
    """A JSON number as a Decimal of at most 34 digits; None for anything else (booleans included)."""
    kind = type(value)
    if kind is Decimal:
        if not value.is_finite():
            return None
        return value if len(value.as_tuple().digits) <= 34 else DECIMAL128.plus(value)
    if kind is int:
        return Decimal(value) if abs(value) < 10**34 else DECIMAL128.create_decimal(value)
    if kind is float:
        return Decimal(repr(value))
    return None


def precision_range(number: Decimal) -> tuple[Decimal, Decimal]:
    """[lo, hi): the values `number` stands for at its written precision (100 → [99.5, 100.5), 1.50 →
    [1.495, 1.505)), as FHIR search defines for number and quantity equality."""
    exponent = number.as_tuple().exponent
    assert isinstance(exponent, int)
    half = Decimal((0, (5,), exponent - 1))
    return DECIMAL128.subtract(number, half), DECIMAL128.add(number, half)


@dataclass(slots=True)
class Encoded:
    """One parameter's encoded values for one resource.

    `ix` goes to `ix.<code>`, `sk` to `sk.<code>` (None: no sort key), and `extra` maps a companion
    section (`ex`, `tx`, `ot`, `ri`) to its values for this parameter.
    """

    ix: list[Any]
    sk: Any = None
    extra: dict[str, list[Any]] = field(default_factory=dict)


def dedupe(values: list[Any]) -> list[Any]:
    """Drop repeated hashable values, keeping first-seen order (unions and repeats often duplicate)."""
    if len(values) < 2:
        return values
    seen: set[Any] = set()
    out: list[Any] = []
    for value in values:
        if value not in seen:
            seen.add(value)
            out.append(value)
    return out


def dedupe_dicts(values: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drop repeated dict values (date/number/quantity entries), keeping first-seen order."""
    if len(values) < 2:
        return values
    seen: set[tuple[Any, ...]] = set()
    out: list[dict[str, Any]] = []
    for value in values:
        key = tuple(value.items())
        if key not in seen:
            seen.add(key)
            out.append(value)
    return out
