"""Durations as operators write them: Prometheus units, plus ``daily``."""

import re

DAY_SECONDS = 86400
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": DAY_SECONDS, "w": 7 * DAY_SECONDS}
_PART = re.compile(r"(\d+)([smhdw])")
_WHOLE = re.compile(r"(?:\d+[smhdw])+")
DAILY = "daily"
_NAMED = {DAILY: DAY_SECONDS}
# Longer delays are taken as typing mistakes, and unbounded ones would overflow
# the integer columns.
MAX_DURATION_DAYS = 365
MAX_DURATION_SECONDS = MAX_DURATION_DAYS * DAY_SECONDS


class DurationError(ValueError):
    pass


class DurationTooLongError(DurationError):
    """A well-formed duration above MAX_DURATION_SECONDS."""


def check_duration_limit(seconds: int, text: object) -> int:
    """Return ``seconds``, or raise DurationTooLongError naming ``text``."""
    if seconds > MAX_DURATION_SECONDS:
        raise DurationTooLongError(
            f"{text!r} is longer than the maximum of {MAX_DURATION_DAYS} days: "
            f"write at most {MAX_DURATION_DAYS}d"
        )
    return seconds


def parse_duration(text: object) -> int:
    """Parse ``90s``, ``10m``, ``1h30m``, ``2d``, ``daily`` into seconds."""
    if isinstance(text, bool) or not isinstance(text, str | int):
        raise DurationError(
            f"{text!r} is not a duration: write a number with a unit, "
            "such as 90s, 10m, 1h30m or 2d, or 'daily'"
        )
    if isinstance(text, int):
        raise DurationError(f"{text!r} has no unit: write {text}s, {text}m or {text}h")
    value = text.strip().lower()
    if value in _NAMED:
        return _NAMED[value]
    if not _WHOLE.fullmatch(value):
        raise DurationError(
            f"{text!r} is not a duration: write a number with a unit, "
            "such as 90s, 10m, 1h30m or 2d, or 'daily'"
        )
    seconds = sum(int(n) * _UNIT_SECONDS[unit] for n, unit in _PART.findall(value))
    return check_duration_limit(seconds, text)


def format_duration(seconds: int) -> str:
    """Format seconds the way the catalog writes them (``1h30m``)."""
    if seconds == 0:
        return "0s"
    parts = []
    remaining = seconds
    for unit in ("w", "d", "h", "m", "s"):
        size = _UNIT_SECONDS[unit]
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
