"""date parameters: every selected date as the `{lo, hi}` UTC range it covers (`hi` exclusive).

Why ranges: FHIR date search compares the precision range of the stored value with that of the search
value (`2024` covers the whole year), and a Period is simply a wider range. Storing both ends lets every
prefix become a range condition that an index on `lo` can serve. BSON dates hold milliseconds, so `lo` is
rounded down and `hi` up to a whole millisecond (a sub-millisecond range must not become empty).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from fhir_server.search.dates import MAX, MIN, try_range
from fhir_server.search.fhirpath import Node
from fhir_server.search.index.encode import Encoded, dedupe_dicts, listed

_MS = timedelta(milliseconds=1)


def _floor(moment: datetime) -> datetime:
    return moment.replace(microsecond=moment.microsecond - moment.microsecond % 1000)


def _ceil(moment: datetime) -> datetime:
    rest = moment.microsecond % 1000
    if not rest:
        return moment
    floored = moment.replace(microsecond=moment.microsecond - rest)
    return floored + _MS if floored < MAX else MAX


def _entry(lo: datetime, hi: datetime) -> dict[str, datetime]:
    lo, hi = _floor(lo), _ceil(hi)
    if hi <= lo:  # clamped at the ends of time (9999-12-31T23:00-05:00): keep one millisecond, never empty
        lo, hi = (MAX - _MS, MAX) if lo >= MAX else (lo, lo + _MS)
    return {"lo": lo, "hi": hi}


def _point(value: Any, out: list[dict[str, datetime]]) -> None:
    if type(value) is str:
        found = try_range(value)
        if found is not None:
            out.append(_entry(*found))


def _period(period: dict[str, Any], out: list[dict[str, datetime]]) -> None:
    """[start.lo, end.hi); an open start is the beginning of time, an open end the end of it."""
    start, end = period.get("start"), period.get("end")
    lo = try_range(start) if type(start) is str else None
    hi = try_range(end) if type(end) is str else None
    if lo is None and hi is None:
        return
    out.append(_entry(lo[0] if lo else MIN, hi[1] if hi else MAX))


def values(nodes: list[Node]) -> Encoded | None:
    """`ix`: `{lo, hi}` per date, dateTime, instant, Period and Timing (events and bounds); sort key: first lo."""
    out: list[dict[str, datetime]] = []
    for node in nodes:
        value = node.value
        if type(value) is str:  # date, dateTime, instant (and a custom string that parses as one)
            _point(value, out)
        elif type(value) is dict:
            kind = node.fhir_type
            if kind == "Period":
                _period(value, out)
            elif kind == "Timing":
                for event in listed(value.get("event")):
                    _point(event, out)
                repeat = value.get("repeat")
                if type(repeat) is dict and type(repeat.get("boundsPeriod")) is dict:
                    _period(repeat["boundsPeriod"], out)
    if not out:
        return None
    out = dedupe_dicts(out)
    return Encoded(out, out[0]["lo"])
