"""When a resume or cancel link counts: the one rule both shells apply (runtime/stepapi/links.py)."""

from __future__ import annotations

import pytest

from millrace.model.run import RunStatus, StepState
from millrace.runtime.stepapi.links import APPLY, WAIT, link_state


def run(phase: str = "Suspended", step_phase: str = "Succeeded", attempts: int = 1, awaiting: bool = True,
        suspended: str | None = "ask") -> RunStatus:
    step = StepState(phase=step_phase, attempts=attempts, awaiting_since=1.0 if awaiting else None)
    return RunStatus(phase=phase, steps={"ask": step}, suspended_step=suspended)


def test_a_link_used_while_its_attempt_runs_waits_for_the_suspension() -> None:
    assert link_state("ask", 1, run("Running", "Running", awaiting=False, suspended=None)) == WAIT


def test_a_link_counts_while_the_run_waits_on_its_attempt() -> None:
    assert link_state("ask", 1, run()) == APPLY


@pytest.mark.parametrize(("status", "why"), [
    (run("Succeeded", suspended=None), "finished"),
    (run("Cancelled", suspended=None), "finished"),
    (run(attempts=2), "not the step's current attempt"),  # failed, retried, suspended again
    (run("Running", suspended=None), "has ended"),  # approved: the run went on
    (RunStatus(phase="Running"), "not the step's current attempt"),
])
def test_a_link_is_void_once_what_it_was_issued_for_is_over(status: RunStatus, why: str) -> None:
    assert why in link_state("ask", 1, status)
