"""A Flow's schedule in the cluster: the pure decision applied to the FlowRuns it made.

Reads the runs labelled with the Flow's name and the schedule label, asks
millrace.schedule.plan what to do, then acts: create the due run (its
name derives from the fire time, so a second operator's create answers
409 and nothing runs twice), cancel runs a `Replace` policy displaces,
delete runs past the history limits. Returns the Flow status fields to
write; the caller writes them.
"""

from __future__ import annotations

from typing import Any, Protocol

from ..model.resources import API_VERSION, Schedule
from ..model.run import TERMINAL_RUN_PHASES
from ..model.times import format_time, parse_time
from ..schedule.plan import RunOutcome, ScheduledRun, decide
from ..schedule.policy import schedule_policy
from . import names
from .control import resume_record

ANNOTATION_SCHEDULED_TIME = "millrace.dev/scheduled-time"


class ScheduleKube(Protocol):
    def list_flowruns(self, namespace: str, selector: str) -> list[dict[str, Any]]: ...

    def create_flowrun(self, obj: dict[str, Any]) -> bool: ...

    def create(self, obj: dict[str, Any]) -> bool: ...

    def delete_flowrun(self, namespace: str, name: str) -> None: ...


def due_soon(flow: dict[str, Any], now: float) -> bool:
    """Whether a pass could start something: no next time recorded yet, or it has come."""
    status = flow.get("status") or {}
    next_time = parse_time(status.get("nextScheduleTime"))
    cron = (flow["spec"].get("schedule") or {}).get("cron")
    return next_time is None or now >= next_time or (status.get("schedule") or {}).get("cron") != cron


def reconcile_schedule(kube: ScheduleKube, flow: dict[str, Any], now: float) -> dict[str, Any]:
    """One pass over a scheduled Flow; returns the Flow status fields it owns."""
    meta, spec = flow["metadata"], Schedule.model_validate(flow["spec"]["schedule"])
    namespace, name = meta["namespace"], meta["name"]
    previous = flow.get("status") or {}
    recorded = previous.get("schedule") or {}
    same_cron = recorded.get("cron") == spec.cron
    # A new or changed cron starts counting now: no catch-up run for times before it existed.
    since = (parse_time(recorded.get("since")) if same_cron else None) or now
    last = parse_time(previous.get("lastScheduleTime")) if same_cron else None
    items = kube.list_flowruns(namespace, f"{names.LABEL_FLOW}={names.label_value(name)},{names.LABEL_SCHEDULED}=true")
    runs = [_scheduled_run(item) for item in items]
    decision = decide(name, schedule_policy(spec), since, last, now, runs)
    by_name = {item["metadata"]["name"]: item for item in items}
    for run in decision.cancel:
        # The record `millrace cancel -n` makes, so the run says who cancelled it and why.
        kube.create(resume_record(by_name[run], payload=None, approver="schedule", cancel=True,
                                  reason=f"replaced by run {decision.run_name} (concurrencyPolicy: Replace)"))
    if decision.start is not None and decision.run_name:
        manifest = _run_manifest(flow, spec, decision.run_name, decision.start)
        kube.create_flowrun(manifest)
    for run in decision.delete:
        kube.delete_flowrun(namespace, run)
    record: dict[str, Any] = {"cron": spec.cron, "since": format_time(since, precise=False), "heldBack": decision.held_back}
    status: dict[str, Any] = {
        "schedule": record,
        "lastScheduleTime": None if decision.last_schedule_time is None else format_time(decision.last_schedule_time, precise=False),
        "nextScheduleTime": None if decision.next_schedule_time is None else format_time(decision.next_schedule_time, precise=False),
    }
    return status


def _scheduled_run(item: dict[str, Any]) -> ScheduledRun:
    annotations = item["metadata"].get("annotations") or {}
    phase = (item.get("status") or {}).get("phase")
    outcome: RunOutcome = "Active" if phase not in TERMINAL_RUN_PHASES else ("Succeeded" if phase == "Succeeded" else "Failed")
    return ScheduledRun(item["metadata"]["name"], float(annotations.get(ANNOTATION_SCHEDULED_TIME, 0)), outcome)


def _run_manifest(flow: dict[str, Any], spec: Schedule, run: str, fire_time: float) -> dict[str, Any]:
    meta = flow["metadata"]
    return {
        "apiVersion": API_VERSION,
        "kind": "FlowRun",
        "metadata": {
            "name": run,
            "namespace": meta["namespace"],
            "labels": {names.LABEL_FLOW: names.label_value(meta["name"]), names.LABEL_SCHEDULED: "true"},
            "annotations": {ANNOTATION_SCHEDULED_TIME: str(int(fire_time))},
            # As a CronJob owns its Jobs: deleting the Flow deletes the runs its schedule made.
            "ownerReferences": [{"apiVersion": API_VERSION, "kind": "Flow", "name": meta["name"],
                                 "uid": meta["uid"], "controller": True, "blockOwnerDeletion": False}],
        },
        "spec": {"flowRef": {"name": meta["name"]}, "args": dict(spec.args)},
    }
