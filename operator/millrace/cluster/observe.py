"""What the operator tells people: Events on FlowRuns, Prometheus metrics, trace spans.

`transitions`, `ended` and `spans` are pure but for the table of attempt starts
`ended` is given (old status, new status -> what changed -> the attempts and
runs it ends, timed -> their spans); `record` turns them into Events, metric
updates and spans for the OTLP exporter. docs/operations.md lists the metrics
and spans.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass
from typing import Any, Mapping

import prometheus_client
from prometheus_client import Counter, Gauge, Histogram

from ..model.run import RunStatus, StepState
from ..model.times import format_time
from ..telemetry.context import RunTrace
from ..telemetry.otlp import Exporter, Span
from . import names
from .kube import KubeApi

LOG = logging.getLogger("millrace.operator")

# Prometheus conventions: the millrace_ prefix, base units (seconds), _total on counters,
# labels with a few fixed values only (never a run, flow or step name).
# A counter's _created series would be a second, unitless series per counter: not exported.
prometheus_client.disable_created_metrics()
OUTCOMES = {"RunSucceeded": "succeeded", "RunFailed": "failed", "RunCancelled": "cancelled",
            "StepSucceeded": "succeeded", "StepFailed": "failed", "StepRetrying": "retried"}
_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
RUNS = Counter("millrace_runs_total", "Finished flow runs, by outcome (succeeded, failed, cancelled).", ["outcome"])
RUN_SECONDS = Histogram("millrace_run_duration_seconds", "Time from a run's start to its end, by outcome.",
                        ["outcome"], buckets=(*_BUCKETS, 4 * 3600, 24 * 3600))
STEP_ATTEMPTS = Counter("millrace_step_attempts_total",
                        "Ended step attempts, by outcome (succeeded, failed, retried: failed and tried again).", ["outcome"])
STEP_SECONDS = Histogram("millrace_step_attempt_duration_seconds", "Time from a step attempt's start to its end, by outcome.",
                         ["outcome"], buckets=_BUCKETS)
ACTIVE_RUNS = Gauge("millrace_active_runs",
                    "Runs the operator follows: queued, being reconciled, or waiting for a wake-up.")
REPORTER = "millrace-operator"
_INSTANCE = socket.gethostname()[:128]  # the operator's pod


@dataclass(frozen=True)
class Transition:
    reason: str  # StepStarted, StepSucceeded, StepFailed, StepRetrying, RunSucceeded, ...
    message: str
    warning: bool = False
    step: str | None = None
    attempt: int | None = None
    started_at: float | None = None  # of the step or run that ended
    finished_at: float | None = None

    @property
    def duration(self) -> float | None:
        return self.finished_at - self.started_at if self.finished_at is not None and self.started_at is not None else None


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
            out.append(Transition("StepRetrying", f"step {path} failed attempt {st.attempts}; retrying", True, step=path,
                                  attempt=st.attempts, started_at=st.started_at))
        elif st.phase == "Running" and st.attempts and (before is None or before.attempts != st.attempts):
            out.append(Transition("StepStarted", f"step {path} attempt {st.attempts} started", step=path,
                                  attempt=st.attempts, started_at=st.started_at))
        elif st.phase in ("Succeeded", "Failed") and (before is None or before.phase != st.phase):
            if st.phase == "Succeeded":
                out.append(Transition("StepSucceeded", f"step {path} succeeded", step=path, attempt=st.attempts,
                                      started_at=st.started_at, finished_at=st.finished_at))
            else:
                error = f": {st.error.name}: {st.error.message}" if st.error else ""
                out.append(Transition("StepFailed", f"step {path} failed{error}"[:1024], True, step=path,
                                      attempt=st.attempts, started_at=st.started_at, finished_at=st.finished_at))
    if new.phase != old.phase and new.phase in ("Succeeded", "Failed", "Cancelled", "Suspended"):
        out.append(Transition(f"Run{new.phase}", _run_message(run, new)[:1024], new.phase in ("Failed", "Cancelled"),
                              started_at=new.started_at, finished_at=new.finished_at))
    return out


def _run_message(run: str, new: RunStatus) -> str:
    if new.phase == "Suspended":
        return f"run {run} is waiting for an approval at step {new.suspended_step}"
    error = f": {new.error.name}: {new.error.message}" if new.error is not None and new.phase != "Succeeded" else ""
    return f"run {run} {new.phase.lower()}{error}"


@dataclass(frozen=True)
class Ended:
    """A step attempt or a run that ended, with its times (start None: not known)."""

    change: Transition
    start: float | None
    end: float


# (run uid, step path, attempt) -> when an attempt after a step's first was seen to start (a StepStarted);
# the attempt's end takes it out, the run's release drops what is left.
ATTEMPT_STARTS: dict[tuple[str, str, int], float] = {}


def ended(uid: str, changes: list[Transition], now: float, starts: dict[tuple[str, str, int], float]) -> list[Ended]:
    """The attempts and runs `changes` end, timed. A step's first attempt starts when the step
    did; a later one when it was seen to start, which an operator restarted meanwhile does not
    know. An attempt failed and retried ends now, the pass that saw its failure."""
    out: list[Ended] = []
    for change in changes:
        key = (uid, change.step or "", change.attempt or 0)
        if change.reason == "StepStarted" and (change.attempt or 0) > 1:
            starts[key] = now
        elif change.reason in ("StepSucceeded", "StepFailed", "StepRetrying"):
            start = starts.pop(key, None) or (change.started_at if change.attempt == 1 else None)
            out.append(Ended(change, start, change.finished_at or now))
        elif change.reason in ("RunSucceeded", "RunFailed", "RunCancelled"):
            out.append(Ended(change, change.started_at, change.finished_at or now))
    return out


def forget_run(uid: str, starts: dict[tuple[str, str, int], float]) -> None:
    for key in [key for key in starts if key[0] == uid]:
        del starts[key]


def spans(trace: RunTrace, run: dict[str, Any], flow: str, done: list[Ended]) -> list[Span]:
    """One span per step attempt that ended (succeeded, failed, or failed and retried), a child of
    the run's, and one for the run when it ended. An attempt whose start is not known starts when
    its step did."""
    meta = run["metadata"]
    common: dict[str, str | int] = {"millrace.run.name": meta["name"], "millrace.run.namespace": meta["namespace"],
                                    "millrace.flow": flow}
    out: list[Span] = []
    for item in done:
        change = item.change
        ok = change.reason in ("StepSucceeded", "RunSucceeded")
        start = item.start or change.started_at or item.end
        if change.step and change.attempt:
            own = trace.step(change.step, change.attempt)
            out.append(Span(trace_id=own.trace_id, span_id=own.span_id, parent_span_id=trace.run.span_id,
                            name=f"step {change.step.rsplit('/', 1)[-1]}", start=start, end=item.end,
                            attributes={**common, "millrace.step.path": change.step, "millrace.step.attempt": change.attempt},
                            status="ok" if ok else "error", message="" if ok else change.message))
        else:
            out.append(Span(trace_id=trace.run.trace_id, span_id=trace.run.span_id, parent_span_id=trace.parent_span_id,
                            name=f"run {flow}", start=start, end=item.end, attributes=common,
                            status="ok" if ok else "error", message="" if ok else change.message))
    return out


def record(kube: KubeApi, obj: dict[str, Any], changes: list[Transition], now: float,
           exporter: Exporter | None = None, trace: RunTrace | None = None, flow: str = "") -> None:
    """Post the Events, update the metrics, hand the spans to the exporter; a failure here never fails the run."""
    done = ended(obj["metadata"]["uid"], changes, now, ATTEMPT_STARTS)
    for item in done:
        outcome = OUTCOMES[item.change.reason]
        counter, histogram = (RUNS, RUN_SECONDS) if item.change.reason.startswith("Run") else (STEP_ATTEMPTS, STEP_SECONDS)
        counter.labels(outcome=outcome).inc()
        if item.start is not None:
            histogram.labels(outcome=outcome).observe(max(0.0, item.end - item.start))
    if exporter is not None and trace is not None:
        exporter.export(spans(trace, obj, flow, done))
    posted = 0
    for change in changes:
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
