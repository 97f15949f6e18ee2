"""What the operator tells people: Events on FlowRuns and Prometheus metrics.

`transitions` is pure (old status, new status -> what changed); the rest
turns each change into an Event and metric updates.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass
from typing import Any, Mapping

from prometheus_client import Counter, Gauge, Histogram

from ..model.run import RunStatus, StepState
from ..model.times import format_time
from . import names
from .kube import KubeApi

LOG = logging.getLogger("millrace.operator")

RUNS = Counter("millrace_runs_total", "Finished flow runs, by outcome.", ["outcome"])
STEPS = Counter("millrace_steps_total", "Finished step attempts, by outcome.", ["outcome"])
STEP_SECONDS = Histogram("millrace_step_duration_seconds", "Duration of step attempts.",
                         buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600))
ACTIVE_RUNS = Gauge("millrace_active_runs", "Runs the operator is reconciling (queue depth).")
REPORTER = "millrace-operator"
_INSTANCE = socket.gethostname()[:128]  # the operator's pod



@dataclass(frozen=True)
class Transition:
    reason: str  # StepStarted, StepSucceeded, StepFailed, StepRetrying, RunSucceeded, ...
    message: str
    warning: bool = False
    step: str | None = None
    duration: float | None = None


def transitions(run: str, old: RunStatus, new: RunStatus,
                compacted: Mapping[str, StepState] | None = None) -> list[Transition]:
    """Every change worth an Event between two states of the run named `run`, in the order they
    happened; `compacted`: the last states of steps of finished loop iterations, which `new` no longer holds."""
    out: list[Transition] = []
    for path, st in {**(compacted or {}), **new.steps}.items():
        if not st.runs_script:
            continue
        before = old.steps.get(path)
        if st.phase == "Running" and st.not_before is not None and (before is None or before.not_before is None):
            out.append(Transition("StepRetrying", f"step {path} failed attempt {st.attempts}; retrying", True, path))
        elif st.phase == "Running" and st.attempts and (before is None or before.attempts != st.attempts):
            out.append(Transition("StepStarted", f"step {path} attempt {st.attempts} started", step=path))
        elif st.phase in ("Succeeded", "Failed") and (before is None or before.phase != st.phase):
            took = (st.finished_at - st.started_at) if st.finished_at and st.started_at else None
            if st.phase == "Succeeded":
                out.append(Transition("StepSucceeded", f"step {path} succeeded", step=path, duration=took))
            else:
                error = f": {st.error.name}: {st.error.message}" if st.error else ""
                out.append(Transition("StepFailed", f"step {path} failed{error}"[:1024], True, path, took))
    if new.phase != old.phase and new.phase in ("Succeeded", "Failed", "Cancelled", "Suspended"):
        out.append(Transition(f"Run{new.phase}", _run_message(run, new)[:1024], new.phase in ("Failed", "Cancelled")))
    return out


def _run_message(run: str, new: RunStatus) -> str:
    if new.phase == "Suspended":
        return f"run {run} is waiting for an approval at step {new.suspended_step}"
    error = f": {new.error.name}: {new.error.message}" if new.error is not None and new.phase != "Succeeded" else ""
    return f"run {run} {new.phase.lower()}{error}"


def record(kube: KubeApi, obj: dict[str, Any], changes: list[Transition], now: float) -> None:
    """Post the Events and update the metrics; a failure here never fails the run."""
    posted = 0
    for change in changes:
        if change.reason in ("StepSucceeded", "StepFailed"):
            STEPS.labels(outcome=change.reason.removeprefix("Step").lower()).inc()
            if change.duration is not None:
                STEP_SECONDS.observe(change.duration)
        elif change.reason in ("RunSucceeded", "RunFailed", "RunCancelled"):
            RUNS.labels(outcome=change.reason.removeprefix("Run").lower()).inc()
        if change.reason == "StepStarted":
            continue  # one Event per step outcome: a start shows in the status and the Job
        # A microsecond apart: sorted by time (kubectl events, describe) a pass's Events keep their order.
        at, posted = now + posted / 1_000_000, posted + 1
        try:
            kube.create(_event(obj, change, at))
        except Exception as exc:  # noqa: BLE001 - events are best effort, by Kubernetes' own rules
            LOG.warning("could not post event %s: %s", change.reason, exc)


def _event(obj: dict[str, Any], change: Transition, at: float) -> dict[str, Any]:
    """An Event with eventTime (a MicroTime) and no first/lastTimestamp (whole seconds, which leave
    the Events of one second unordered): kubectl sorts and ages Events by eventTime then."""
    meta = obj["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"],
                     "labels": {names.LABEL_RUN: names.label_value(meta["name"])}},
        "involvedObject": {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": meta["name"],
                           "namespace": meta["namespace"], "uid": meta["uid"]},
        "reason": change.reason,
        "message": change.message,
        "type": "Warning" if change.warning else "Normal",
        "source": {"component": REPORTER},
        "eventTime": format_time(at),
        "reportingComponent": REPORTER,
        "reportingInstance": _INSTANCE,
        "action": change.reason,
    }
