"""Human durations ("90s", "5m", "4h", "1h30m") to seconds and back. Pure."""

from __future__ import annotations

import re

__all__ = ["format_duration", "parse_duration"]

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")


def parse_duration(text: str) -> float:
    """Return the number of seconds in ``text``.

    Accepts one or more ``<number><unit>`` parts with units ms, s, m, h, d (``"90s"``, ``"1h30m"``,
    ``"0.5s"``). Raises ``ValueError`` naming the accepted form for anything else, including bare numbers,
    which are ambiguous.
    """
    compact = text.strip().replace(" ", "")
    if not compact:
        raise ValueError("empty duration")
    position = 0
    total = 0.0
    for match in _PART.finditer(compact):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    if position != len(compact):
        raise ValueError(f"{text!r} is not a duration")
    return total


def format_duration(seconds: float) -> str:
    """Render seconds the way an operator reads them: ``"41 min"``, ``"2 h 05 min"``, ``"45 s"``."""
    if seconds < 0:
        raise ValueError("negative duration")
    whole = round(seconds)
    if whole < 120:
        return f"{whole} s"
    minutes = whole // 60
    if minutes < 120:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"
