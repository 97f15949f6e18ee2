"""Times as the engine keeps them (epoch seconds) and as Kubernetes shows them (RFC 3339, UTC).

One codec, both ways. `format_time` writes a Kubernetes MicroTime
(`2026-12-02T20:38:14.123456Z`) or, with `precise=False`, a metav1.Time
(`2026-12-02T20:38:14Z`, truncated as Kubernetes truncates). `parse_time`
reads either, any RFC 3339 offset, and epoch seconds as a number or numeric
text (what FlowRun statuses held before). A time written precisely reads back
as the same float for every float rounded to the microsecond, so a status
written, read and written again does not change. `format_duration` is how
every shell shows a duration.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, get_args

from pydantic import BaseModel, BeforeValidator, WithJsonSchema

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_MICRO = dt.timedelta(microseconds=1)


def format_time(epoch: float, precise: bool = True) -> str:
    """RFC 3339 in UTC: to the microsecond (rounded), or to the second (truncated) when not `precise`."""
    when = _EPOCH + dt.timedelta(microseconds=round(epoch * 1_000_000))
    if not precise:
        return when.strftime("%Y-%m-%dT%H:%M:%SZ")
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: float | int | str | None) -> float | None:
    """Epoch seconds of an RFC 3339 time or of epoch seconds (a number or its text); None stays None."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"a time must be RFC 3339 text or epoch seconds, not {type(value).__name__}")
    text = value.strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not an RFC 3339 time: {value!r}") from None
    if when.tzinfo is None:
        raise ValueError(f"an RFC 3339 time needs an offset (Z for UTC): {value!r}")
    return ((when - _EPOCH) // _MICRO) / 1_000_000


def _read(value: Any) -> Any:
    return parse_time(value) if isinstance(value, str) else value


# A point in time in the run state: a float in the engine and in local run records, RFC 3339 in
# FlowRun.status (cluster/status.py, wire_times); either is read. The CRD leaves its type open so that an
# operator from before RFC 3339 statuses can still write its status while an upgrade replaces it.
Time = Annotated[
    float,
    BeforeValidator(_read),
    WithJsonSchema({"description": "RFC 3339 time (epoch seconds in statuses written before RFC 3339)."}),
]


def time_fields(model: type[BaseModel]) -> frozenset[str]:
    """The wire names (aliases) of the model's fields that hold a Time (or None)."""
    return frozenset(field.alias or name for name, field in model.model_fields.items()
                     if Time in (field.annotation, *get_args(field.annotation)))


def format_duration(seconds: float) -> str:
    """A duration as people read it: 0.52s, 3m04s, 2h05m."""
    if seconds < 60:
        return f"{seconds:.2f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"
