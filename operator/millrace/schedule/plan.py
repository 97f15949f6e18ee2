"""What a flow's schedule does now: a pure function of the schedule, its record and the runs it made.

The rules are CronJob's: only the most recent missed fire time is started
(never a burst after downtime), and only if it is within
`startingDeadlineSeconds`; `Forbid` holds a due time back while a run is
active (it starts once that run ends, if still within the deadline),
`Replace` cancels the active runs first. The name of a scheduled run derives
from its fire time, so two operators deciding the same thing create the same
object and the apiserver lets only one through.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Literal

from .cron import Cron

ConcurrencyPolicy = Literal["Allow", "Forbid", "Replace"]
RunOutcome = Literal["Active", "Succeeded", "Failed"]


@dataclass(frozen=True)
class SchedulePolicy:
    """The settings of `Flow.spec.schedule` that decide what happens."""

    cron: Cron
    suspend: bool = False
    concurrency_policy: ConcurrencyPolicy = "Allow"
    starting_deadline_seconds: float | None = None
    successful_runs_history_limit: int = 3
    failed_runs_history_limit: int = 1


@dataclass(frozen=True)
class ScheduledRun:
    """A run this schedule made, as the shell found it."""

    name: str
    scheduled_time: float
    outcome: RunOutcome


@dataclass(frozen=True)
class ScheduleDecision:
    start: float | None = None
    run_name: str | None = None
    cancel: tuple[str, ...] = ()
    delete: tuple[str, ...] = ()
    last_schedule_time: float | None = None
    next_schedule_time: float | None = None
    held_back: str | None = field(default=None)


def run_name(flow: str, fire_time: float, limit: int = 63) -> str:
    """`<flow>-<fire time in epoch seconds>`, the flow part shortened with a hash when it must be cut."""
    suffix = f"-{int(fire_time)}"
    room = limit - len(suffix)
    if len(flow) > room:
        digest = hashlib.sha256(flow.encode()).hexdigest()[:8]
        flow = f"{flow[: room - 9].rstrip('-')}-{digest}"
    return f"{flow}{suffix}"


def decide(flow: str, policy: SchedulePolicy, since: float, last_schedule_time: float | None,
           now: float, runs: list[ScheduledRun]) -> ScheduleDecision:
    """`since`: when the schedule took effect; `last_schedule_time`: the fire time of the last run started."""
    next_time = None if policy.suspend else policy.cron.next_after(now)
    delete = _pruned(policy, runs)
    due = None if policy.suspend else _due(policy, since, last_schedule_time, now)
    base = ScheduleDecision(last_schedule_time=last_schedule_time, next_schedule_time=next_time, delete=delete)
    if due is None:
        return base
    active = tuple(r.name for r in runs if r.outcome == "Active")
    name = run_name(flow, due)
    if any(r.name == name for r in runs):
        # Already started by this or another operator: only the record is behind.
        return ScheduleDecision(last_schedule_time=due, next_schedule_time=next_time, delete=delete)
    if active and policy.concurrency_policy == "Forbid":
        return ScheduleDecision(last_schedule_time=last_schedule_time, next_schedule_time=next_time, delete=delete,
                                held_back=f"{len(active)} run(s) still active and concurrencyPolicy is Forbid")
    cancel = active if policy.concurrency_policy == "Replace" else ()
    return ScheduleDecision(start=due, run_name=name, cancel=cancel, delete=delete,
                            last_schedule_time=due, next_schedule_time=next_time)


def _due(policy: SchedulePolicy, since: float, last: float | None, now: float) -> float | None:
    """The most recent fire time not started yet, if it may still start."""
    earliest = max(since, last) if last is not None else since
    if policy.starting_deadline_seconds is not None:
        earliest = max(earliest, now - policy.starting_deadline_seconds)
    latest = policy.cron.latest_at_or_before(now)
    return latest if latest > earliest else None


def _pruned(policy: SchedulePolicy, runs: list[ScheduledRun]) -> tuple[str, ...]:
    """Finished runs beyond the history limits, oldest first."""
    out: list[str] = []
    for outcome, keep in (("Succeeded", policy.successful_runs_history_limit),
                          ("Failed", policy.failed_runs_history_limit)):
        finished = sorted((r for r in runs if r.outcome == outcome), key=lambda r: r.scheduled_time, reverse=True)
        out.extend(r.name for r in reversed(finished[max(keep, 0):]))
    return tuple(out)
