"""Times from a FlowRun's status, as numbers or as RFC 3339 strings, and how they are shown."""

from __future__ import annotations

import datetime as dt
from typing import Any


def epoch(value: Any) -> float | None:
    """Seconds since the epoch from a status time: the engine's number, or an RFC 3339 string."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)):
        return float(value)
    parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)).timestamp()


def rfc3339(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def took(seconds: float) -> str:
    """A duration: 0.52s, 3m04s, 2h05m."""
    if seconds < 60:
        return f"{seconds:.2f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


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
