"""What the operator tells people: Events on FlowRuns and Prometheus metrics.

`transitions` is pure (old status, new status -> what changed); the rest
turns each change into an Event and metric updates.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any, Mapping

from prometheus_client import Counter, Gauge, Histogram

from ..model.run import RunStatus, StepState
from . import names
from .kube import KubeApi

LOG = logging.getLogger("millrace.operator")

RUNS = Counter("millrace_runs_total", "Finished flow runs, by outcome.", ["outcome"])
STEPS = Counter("millrace_steps_total", "Finished step attempts, by outcome.", ["outcome"])
STEP_SECONDS = Histogram("millrace_step_duration_seconds", "Duration of step attempts.",
                         buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600))
ACTIVE_RUNS = Gauge("millrace_active_runs", "Runs the operator is reconciling (queue depth).")



@dataclass(frozen=True)
class Transition:
    reason: str  # StepStarted, StepSucceeded, StepFailed, StepRetrying, RunSucceeded, ...
    message: str
    warning: bool = False
    step: str | None = None
    duration: float | None = None


def transitions(old: RunStatus, new: RunStatus, compacted: Mapping[str, StepState] | None = None) -> list[Transition]:
    """Every change worth an Event between two states of one run; `compacted`: the last states
    of steps of finished loop iterations, which `new` no longer holds."""
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
        out.append(Transition(f"Run{new.phase}", f"the run is {new.phase.lower()}", new.phase in ("Failed", "Cancelled")))
    return out


def record(kube: KubeApi, obj: dict[str, Any], changes: list[Transition], now: float) -> None:
    """Post the Events and update the metrics; a failure here never fails the run."""
    for change in changes:
        if change.reason in ("StepSucceeded", "StepFailed"):
            STEPS.labels(outcome=change.reason.removeprefix("Step").lower()).inc()
            if change.duration is not None:
                STEP_SECONDS.observe(change.duration)
        elif change.reason in ("RunSucceeded", "RunFailed", "RunCancelled"):
            RUNS.labels(outcome=change.reason.removeprefix("Run").lower()).inc()
        if change.reason == "StepStarted":
            continue  # one Event per step outcome: a start shows in the status and the Job
        try:
            kube.create(_event(obj, change, now))
        except Exception as exc:  # noqa: BLE001 - events are best effort, by Kubernetes' own rules
            LOG.warning("could not post event %s: %s", change.reason, exc)


def _event(obj: dict[str, Any], change: Transition, now: float) -> dict[str, Any]:
    meta = obj["metadata"]
    stamp = dt.datetime.fromtimestamp(now, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
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
        "source": {"component": "millrace-operator"},
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }
