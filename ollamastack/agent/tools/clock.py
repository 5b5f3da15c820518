"""The `current_time` tool: the date and time in any IANA time zone (or a city that names one)."""

from __future__ import annotations

import functools
from collections import Counter
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from langchain_core.tools import tool


@tool(parse_docstring=True)
def current_time(timezone: str = "UTC") -> str:
    """Get the current date and time in a time zone.

    Args:
        timezone: An IANA time zone name in Area/City form, for example "Europe/Paris",
            "America/New_York" or "Asia/Tokyo". Defaults to "UTC".
    """
    try:
        zone = _find_zone(timezone)
    except LookupError as error:
        return f"Error: {error}"
    return describe_time(datetime.now(zone))


def describe_time(moment: datetime) -> str:
    """Describe an aware datetime in words and in ISO 8601.

    >>> print(describe_time(datetime(2026, 11, 25, 16, 4, 5, tzinfo=ZoneInfo("Europe/Paris"))))
    Europe/Paris: Wednesday, 25 November 2026, 16:04:05 CET (UTC+01:00)
    ISO 8601: 2026-11-25T16:04:05+01:00
    """
    minutes = round(moment.utcoffset().total_seconds() / 60)
    sign = "+" if minutes >= 0 else "-"
    offset = f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    when = f"{moment:%A}, {moment.day} {moment:%B %Y, %H:%M:%S}"
    return (
        f"{moment.tzinfo}: {when} {moment.tzname()} ({offset})\n"
        f"ISO 8601: {moment.isoformat(timespec='seconds')}"
    )


def _find_zone(name: str) -> ZoneInfo:
    key = name.strip() or "UTC"
    if key.upper() in {"UTC", "GMT", "Z"}:
        key = "UTC"
    if len(key) <= 64:
        try:
            return ZoneInfo(key)
        except (ZoneInfoNotFoundError, ValueError, OSError):  # ValueError: path-like keys
            pass
        if alias := _zone_aliases().get(key.lower().replace(" ", "_")):
            return ZoneInfo(alias)
    raise LookupError(
        f"unknown time zone {name!r}. Use an IANA name in Area/City form, such as "
        "Europe/Paris, America/New_York, Asia/Tokyo, or UTC."
    )


@functools.cache
def _zone_aliases() -> dict[str, str]:
    """Lower-case zone names, and city names that name a single zone ("tokyo")."""
    zones = {zone: zone.rsplit("/", 1)[-1].lower() for zone in available_timezones()}
    cities = Counter(zones.values())
    aliases = {city: zone for zone, city in zones.items() if "/" in zone and cities[city] == 1}
    return aliases | {zone.lower(): zone for zone in zones}
