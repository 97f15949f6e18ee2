"""Times from a FlowRun's status, as numbers or as RFC 3339 strings, and how they are shown."""

from __future__ import annotations

from typing import Any

from ...model.times import format_time, parse_time


def epoch(value: Any) -> float | None:
    """Seconds since the epoch from a status time: the engine's number, or an RFC 3339 string."""
    return None if value == "" else parse_time(value)


def rfc3339(seconds: float) -> str:
    return format_time(seconds, precise=False)


def age(seconds: float) -> str:
    """How long ago, as kubectl shows an age: 45s, 12m, 5h, 3d."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size * (2 if unit != "m" else 1):
            return f"{int(seconds // size)}{unit}"
    return f"{max(int(seconds), 0)}s"


def span(start: Any, end: Any, now: float) -> float | None:
    """From `start` to `end` (to `now` while there is no end); None before a start."""
    began = epoch(start)
    if began is None:
        return None
    finished = epoch(end)
    return (finished if finished is not None else now) - began
