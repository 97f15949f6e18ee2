"""What kubectl shows of a run, the pure parts: columns filled from the status, the Flow's LAST RUN."""

from __future__ import annotations

from millrace.cluster.status import decorate, last_run_ops, phase_shown
from millrace.model.resources import FlowRunStatus
from millrace.model.run import StepState

T = 1796243894.123456  # 2026-12-02T20:38:14.123456Z


RUN = {"metadata": {"name": "r", "generation": 1}, "spec": {"flowRef": {"name": "f"}}}


def test_duration_is_written_once_the_run_ended_and_step_is_empty_then() -> None:
    running = FlowRunStatus(phase="Running", started_at=T,
                            steps={"a": StepState(phase="Running", type="rawscript", attempts=1)})
    shown = decorate(running, RUN, T + 10)
    assert shown.current_step == "a" and shown.duration is None and shown.start_time == "2026-12-02T20:38:14Z"
    ended = decorate(running.model_copy(update={"phase": "Cancelled", "finished_at": T + 75}), RUN, T + 80)
    assert ended.current_step is None and ended.duration == "1m15s"
    suspended = FlowRunStatus(phase="Failed", started_at=T, finished_at=T + 1, suspended_step="ask")
    assert decorate(suspended, RUN, T + 2).current_step is None


def test_a_new_run_shows_pending_with_its_flow_and_ongoing_conditions() -> None:
    shown = decorate(FlowRunStatus(), RUN, T)
    assert shown.phase == "Pending" and shown.flow == "f" and shown.current_step is None and shown.start_time is None
    assert {c.type: c.status for c in shown.conditions} == {"Succeeded": "Unknown", "Ready": "False",
                                                           "Reconciling": "True", "Stalled": "False"}


def test_the_flows_last_run_shows_skipped_runs_and_only_while_it_shows_that_run() -> None:
    assert phase_shown(FlowRunStatus(phase="Succeeded", skipped=True)) == "Skipped"
    assert phase_shown(FlowRunStatus(phase="Failed")) == "Failed"
    assert last_run_ops("r-2", FlowRunStatus(phase="Running")) == [
        {"op": "test", "path": "/status/lastRun", "value": "r-2"},
        {"op": "replace", "path": "/status/lastRunPhase", "value": "Running"}]
