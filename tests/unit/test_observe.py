"""Which changes of a run become Events: a pure diff of two states."""

from __future__ import annotations

from millrace.cluster.observe import transitions
from millrace.model.run import ErrorInfo, RunStatus, StepState


def state(phase: str = "Running", **steps: StepState) -> RunStatus:
    return RunStatus(phase=phase, steps=steps)  # type: ignore[arg-type]


def test_step_start_success_failure_and_retry() -> None:
    running = StepState(type="rawscript", phase="Running", attempts=1, started_at=1)
    done = running.model_copy(update={"phase": "Succeeded", "finished_at": 3})
    failed = running.model_copy(update={"phase": "Failed", "finished_at": 2, "error": ErrorInfo(name="E", message="m")})
    retrying = running.model_copy(update={"not_before": 9})
    assert [t.reason for t in transitions("r", state(), state(a=running))] == ["StepStarted"]
    success = transitions("r", state(a=running), state(a=done))
    assert [(t.reason, t.duration) for t in success] == [("StepSucceeded", 2)]
    failure = transitions("r", state(a=running), state("Failed", a=failed))
    assert [t.reason for t in failure] == ["StepFailed", "RunFailed"] and failure[0].warning and "E: m" in failure[0].message
    assert [t.reason for t in transitions("r", state(a=running), state(a=retrying))] == ["StepRetrying"]
    again = retrying.model_copy(update={"not_before": None, "attempts": 2})
    assert [t.reason for t in transitions("r", state(a=retrying), state(a=again))] == ["StepStarted"]


def test_containers_and_unchanged_steps_are_quiet() -> None:
    loop = StepState(type="forloopflow", phase="Running")
    running = StepState(type="rawscript", phase="Running", attempts=1)
    assert transitions("r", state(a=running, l=loop), state(a=running, l=loop)) == []


def test_suspension_is_announced() -> None:
    assert [t.reason for t in transitions("r", state(), state("Suspended"))] == ["RunSuspended"]


def test_a_step_of_an_iteration_compacted_as_it_ends_still_reports_its_outcome() -> None:
    loop = StepState(type="forloopflow", phase="Running")
    running = StepState(type="rawscript", phase="Running", attempts=1, started_at=1)
    done = running.model_copy(update={"phase": "Succeeded", "finished_at": 4})
    found = transitions("r", state(**{"l": loop, "l/0/x": running}), state(l=loop), {"l/0/x": done})
    assert [(t.reason, t.step) for t in found] == [("StepSucceeded", "l/0/x")]
