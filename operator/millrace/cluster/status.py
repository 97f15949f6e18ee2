"""The Kubernetes conventions layered on the run state: conditions, printer columns."""

from __future__ import annotations

from typing import Any

from ..model.resources import Condition, FlowRunStatus
from ..model.run import StepState
from ..model.times import format_duration, format_time, parse_time, time_fields

# parse_time reads the times of any FlowRun status, RFC 3339 or the epoch seconds of older ones.
__all__ = ["decorate", "parse_time", "timestamp", "wire_times"]
_RUN_TIMES = time_fields(FlowRunStatus)
_STEP_TIMES = time_fields(StepState)

# Per phase: (reason, message) and the status of each condition. Ready, Reconciling and Stalled are the
# kstatus conventions (what Flux, kpt and `kubectl wait` read); Succeeded is the run condition of Tekton
# and Knative runs: Unknown while the run goes on, then True or False.
PHASE_TEXT = {
    "Pending": ("Pending", "the run has not started"),
    "Running": ("Running", "steps are running"),
    "Suspended": ("Suspended", "waiting for an approval"),
    "Succeeded": ("Succeeded", "the run succeeded"),
    "Failed": ("Failed", "the run failed"),
    "Cancelled": ("Cancelled", "the run was cancelled"),
}
_ONGOING = {"Succeeded": "Unknown", "Ready": "False", "Reconciling": "True", "Stalled": "False"}
CONDITIONS_BY_PHASE: dict[str, dict[str, str]] = {
    "Pending": _ONGOING, "Running": _ONGOING, "Suspended": _ONGOING,
    "Succeeded": {"Succeeded": "True", "Ready": "True", "Reconciling": "False", "Stalled": "False"},
    "Failed": {"Succeeded": "False", "Ready": "False", "Reconciling": "False", "Stalled": "True"},
    "Cancelled": {"Succeeded": "False", "Ready": "False", "Reconciling": "False", "Stalled": "True"},
}


def conditions(previous: list[Condition], wanted: dict[str, str], reason: str, message: str,
               generation: int | None, now: str) -> list[Condition]:
    """`wanted` (type -> status) as conditions, each keeping its lastTransitionTime while its status
    and reason stay; conditions of other types are kept."""
    old = {c.type: c for c in previous}
    made = []
    for kind, value in wanted.items():
        before = old.get(kind)
        same = before is not None and before.status == value and before.reason == reason
        made.append(Condition(type=kind, status=value, reason=reason, message=message[:1024],  # type: ignore[arg-type]
                              observed_generation=generation,
                              last_transition_time=before.last_transition_time if same and before else now))
    return [c for c in previous if c.type not in wanted] + made


def flow_conditions(previous: list[Condition], ready: Condition, generation: int | None, now: str) -> list[Condition]:
    """A Flow's conditions from its validation (`ready`): Ready, Stalled while it is invalid (nothing
    changes until its spec does), Reconciling never (a Flow is checked at once)."""
    wanted = {"Ready": ready.status, "Reconciling": "False", "Stalled": "False" if ready.status == "True" else "True"}
    return conditions(previous, wanted, ready.reason, ready.message, generation, now)


def timestamp(epoch: float) -> str:
    """A metav1.Time: what conditions and startTime hold."""
    return format_time(epoch, precise=False)


def wire_times(document: dict[str, Any]) -> dict[str, Any]:
    """A dumped run status with its times (epoch seconds) as RFC 3339, what FlowRun.status holds.

    Applied after secret values are masked: masking touches only strings, so a secret made of digits
    cannot garble a time."""
    def converted(part: dict[str, Any], keys: frozenset[str]) -> dict[str, Any]:
        return {k: format_time(v) if k in keys and isinstance(v, (int, float)) else v for k, v in part.items()}
    out = converted(document, _RUN_TIMES)
    if isinstance(document.get("steps"), dict):
        out["steps"] = {path: converted(st, _STEP_TIMES) for path, st in document["steps"].items()}
    return out


def phase_shown(status: FlowRunStatus) -> str:
    """A run's phase as its Flow's LAST RUN shows it: Skipped for a run a trigger found nothing for."""
    return "Skipped" if status.phase == "Succeeded" and status.skipped else status.phase


def last_run_ops(run: str, status: FlowRunStatus) -> list[dict[str, Any]]:
    """The JSON patch that shows a run's new phase on its Flow, only while the Flow shows that run."""
    return [{"op": "test", "path": "/status/lastRun", "value": run},
            {"op": "replace", "path": "/status/lastRunPhase", "value": phase_shown(status)}]


def decorate(status: FlowRunStatus, obj: dict[str, Any], now: float) -> FlowRunStatus:
    """Fill conditions, observedGeneration, flow, currentStep, startTime and duration from the run state.

    currentStep is empty once the run ended; duration is written when it ends (a printer column
    cannot compute, and a value refreshed by passes would be stale between them): while it runs,
    the Started column (a date) is the time it has taken."""
    out = status.model_copy()
    generation = obj["metadata"].get("generation")
    out.observed_generation = generation
    spec = obj.get("spec") or {}
    inline = spec.get("flow")
    out.flow = ((spec.get("flowRef") or {}).get("name") if inline is None
                else f"(inline) {inline.get('summary') or ''}".strip() if isinstance(inline, dict) else "(inline)")
    running = [p for p, st in status.steps.items() if st.phase == "Running" and st.runs_script]
    out.current_step = None if status.terminal else status.suspended_step or (running[0] if running else None)
    out.start_time = timestamp(status.started_at) if status.started_at is not None else None
    out.duration = None
    if status.terminal and status.started_at is not None and status.finished_at is not None:
        out.duration = format_duration(status.finished_at - status.started_at)
    reason, message = PHASE_TEXT[status.phase]
    if status.error is not None and status.phase in ("Failed", "Cancelled"):
        message = f"{status.error.name}: {status.error.message}"
    elif status.phase == "Suspended" and status.suspended_step:
        message = f"waiting for an approval at step {status.suspended_step}"
    # A run written before these conditions had one "Finished" condition in their place.
    previous = [c for c in status.conditions if c.type != "Finished"]
    out.conditions = conditions(previous, CONDITIONS_BY_PHASE[status.phase], reason, message, generation,
                                timestamp(now))
    return out
