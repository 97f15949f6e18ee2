"""The Kubernetes conventions layered on the run state: conditions, printer columns."""

from __future__ import annotations

import datetime as dt
from typing import Any

from ..model.resources import Condition, FlowRunStatus

CONDITION_BY_PHASE = {
    "Pending": ("False", "Pending", "the run has not started"),
    "Running": ("False", "Running", "steps are running"),
    "Suspended": ("False", "Suspended", "waiting for an approval"),
    "Succeeded": ("True", "Succeeded", "the run succeeded"),
    "Failed": ("True", "Failed", "the run failed"),
    "Cancelled": ("True", "Cancelled", "the run was cancelled"),
}


def timestamp(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes}m" if hours else f"{minutes}m{secs}s"


def decorate(status: FlowRunStatus, obj: dict[str, Any], now: float) -> FlowRunStatus:
    """Fill conditions, observedGeneration, currentStep and duration from the run state."""
    out = status.model_copy()
    generation = obj["metadata"].get("generation")
    out.observed_generation = generation
    running = [p for p, st in status.steps.items() if st.phase == "Running" and st.runs_script]
    out.current_step = status.suspended_step or (running[0] if running else None)
    if status.started_at:
        out.start_time = timestamp(status.started_at)
        out.duration = _duration((status.finished_at or now) - status.started_at)
    value, reason, message = CONDITION_BY_PHASE[status.phase]
    if status.error is not None and status.phase in ("Failed", "Cancelled"):
        message = f"{status.error.name}: {status.error.message}"
    previous = next((c for c in status.conditions if c.type == "Finished"), None)
    changed = previous is None or previous.status != value or previous.reason != reason
    finished = Condition(
        type="Finished",
        status=value,  # type: ignore[arg-type]
        reason=reason,
        message=message[:1024],
        observed_generation=generation,
        last_transition_time=timestamp(now) if changed else previous.last_transition_time,  # type: ignore[union-attr]
    )
    out.conditions = [c for c in status.conditions if c.type != "Finished"] + [finished]
    return out
