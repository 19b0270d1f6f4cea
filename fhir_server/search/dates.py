"""FHIR date, dateTime and instant values as the time range they cover (search.html#date).

`2024` covers the whole year, `2024-03-05T10:00` the whole minute, and so on; values without a timezone
are read as UTC. Both ends are timezone-aware; the end is exclusive. Ranges reaching past what `datetime`
can hold (year 9999's end, a time zone pushing 0001-01-01 before year 1) are clamped to `MIN`/`MAX`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

from fhir_server import errors

# The ends of representable time; MAX is a whole millisecond because BSON dates hold milliseconds.
MIN = datetime(1, 1, 1, tzinfo=UTC)
MAX = datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)

_PATTERN = re.compile(
    r"(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})(?:T(?P<H>\d{2}):(?P<M>\d{2})"
    r"(?::(?P<S>\d{2})(?:\.(?P<f>\d{1,9}))?)?(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?"
)


def _add_months(moment: datetime, months: int) -> datetime:
    month = moment.month - 1 + months
    return moment.replace(year=moment.year + month // 12, month=month % 12 + 1)


def parse_range(value: str, name: str) -> tuple[datetime, datetime]:
    """The [start, end) range `value` covers; raises 400 naming parameter `name` if it is not a FHIR date."""
    match = _PATTERN.fullmatch(value.strip())
    if not match:
        raise errors.invalid(f"{name}: '{value}' is not a FHIR date, dateTime or instant", name)
    g = match.groupdict()
    try:
        tz = UTC
        if g["tz"] and g["tz"] != "Z":
            sign = 1 if g["tz"][0] == "+" else -1
            hours, minutes = int(g["tz"][1:3]), int(g["tz"][4:6])
            tz = timezone(sign * timedelta(hours=hours, minutes=minutes))
        fraction = (g["f"] or "").ljust(6, "0")[:6]
        start = datetime(int(g["y"]), int(g["m"] or 1), int(g["d"] or 1), int(g["H"] or 0), int(g["M"] or 0),
                         int(g["S"] or 0), int(fraction or 0), tzinfo=tz)
    except ValueError:
        raise errors.invalid(f"{name}: '{value}' is not a valid date", name) from None
    try:
        if g["f"]:
            end = start + timedelta(microseconds=max(1, 10 ** (6 - min(len(g["f"]), 6))))
        elif g["S"]:
            end = start + timedelta(seconds=1)
        elif g["M"]:
            end = start + timedelta(minutes=1)
        elif g["d"]:
            end = start + timedelta(days=1)
        elif g["m"]:
            end = _add_months(start, 1)
        else:
            end = start.replace(year=start.year + 1)
    except (OverflowError, ValueError):
        end = MAX
    return _utc(start), _utc(end)


def _utc(moment: datetime) -> datetime:
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        return MIN if moment.year == 1 else MAX


def try_range(value: str) -> tuple[datetime, datetime] | None:
    """`parse_range` for stored values: None instead of an error (extraction never fails a write)."""
    try:
        return parse_range(value, "")
    except errors.FhirError:
        return None
