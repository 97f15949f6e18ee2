"""Restarting a run from a step (engine/restart.py), each rule as Windmill states it:
windmill-queue jobs.rs `restarted_flows_resolution` (which steps are carried over, what is
refused), `push`'s `JobPayload::RestartedFlow` arm (the failure module and retries start
afresh) and windmill-api jobs.rs `restart_flow` (the new job gets the completed job's args)."""

from __future__ import annotations

from typing import Any

import pytest

from millrace.engine.actions import RunStep
from millrace.engine.restart import RestartError, restarted
from millrace.model.flow import OpenFlow
from millrace.model.run import RestartFrom, RunStatus

from millrace.engine.events import Resumed, Start

from .planner_harness import Harness, StepFailed, echo_args, flow, script
from .test_planner import drive, finish, loop

A_B_C = flow(
    script("a", {"n": "flow_input.n"}),
    script("b", {"prev": "previous_result", "a": "results.a"}),
    script("c", {"b": "results.b"}),
    schema={"type": "object", "properties": {"n": {"type": "number"}}},
)


def steps_run(h: Harness) -> list[str]:
    return [action.path for action in h.started]


def restart(f: OpenFlow, source: RunStatus, step: str, source_flow: str = "test") -> RunStatus:
    return restarted("test", f, source_flow, source, RestartFrom(run="r1", step=step))


def rerun(f: OpenFlow, source: RunStatus, step: str, fn: Any = echo_args) -> tuple[Harness, RunStatus]:
    h = Harness(f, fn, reload=True)
    state = restart(f, source, step)
    return h, h.run(state.args, initial=state)


def test_steps_before_the_restart_step_are_not_run_again_and_keep_their_results() -> None:
    """restarted_flows_resolution: top-level modules before `step_id` are transferred as they are
    (Success), the one at `step_id` and every later one become WaitingForPriorSteps and run again."""
    first = Harness(A_B_C, echo_args).run({"n": 3})
    h, again = rerun(A_B_C, first, "b")
    assert steps_run(h) == ["b", "c"]
    assert again.phase == "Succeeded"
    assert again.result == first.result == {"b": {"prev": {"n": 3}, "a": {"n": 3}}}
    assert again.steps["a"] == first.steps["a"]
    assert again.restarted_from == RestartFrom(run="r1", step="b")


def test_the_restart_step_sees_the_reused_step_result_as_previous_result() -> None:
    """A transferred module's result is the `previous_result` of the step after it, as in a run that ran it."""
    first = Harness(A_B_C, lambda action: {"from": action.path}).run({"n": 1})
    h, _ = rerun(A_B_C, first, "b")
    assert h.started[0].args == {"prev": {"from": "a"}, "a": {"from": "a"}}


def test_a_failed_run_is_restarted_from_the_step_that_failed() -> None:
    """The usual case: the earlier run failed at `step_id`; the modules before it succeeded."""
    def b_fails(action: RunStep) -> Any:
        if action.path == "b":
            raise StepFailed("b is broken")
        return action.args

    first = Harness(A_B_C, b_fails).run({"n": 2})
    assert first.phase == "Failed"
    h, again = rerun(A_B_C, first, "b")
    assert steps_run(h) == ["b", "c"] and again.phase == "Succeeded"
    assert again.steps["b"].attempts == 1  # the new run's own attempts, from the start


def test_the_restarted_run_gets_the_earlier_runs_inputs() -> None:
    """windmill-api `restart_flow` pushes the completed job's args with the restarted flow."""
    first = Harness(A_B_C, echo_args).run({"n": 7})
    assert restart(A_B_C, first, "a").args == {"n": 7}
    assert restart(A_B_C, first, "a").steps == {}


def test_a_loop_before_the_restart_step_is_reused_with_its_body_results() -> None:
    """A transferred loop keeps what later steps read of it: its results and its body's last results."""
    f = flow(loop("l", "[1, 2]", [script("x", {"v": "flow_input.iter.value"})]), script("c", {"l": "results.l", "x": "results.x"}))
    first = Harness(f, echo_args).run()
    h, again = rerun(f, first, "c")
    assert steps_run(h) == ["c"]
    assert again.result == first.result == {"l": [{"v": 1}, {"v": 2}], "x": {"v": 2}}


def test_an_approval_before_the_restart_step_is_seen_by_the_step_after_it() -> None:
    """A transferred suspended module keeps its approvals: the step after it sees `resume` as before
    (push_next_flow_job reads the previous module's resume messages)."""
    f = flow(script("ask", suspend={"required_events": 1, "timeout": 100}), script("next", {"r": "resume", "who": "approvers"}))
    h = Harness(f, echo_args)
    state, _ = drive(h, RunStatus(), Start(now=0))
    state, _ = drive(h, state, finish("ask", "asked", 1))
    state, _ = drive(h, state, Resumed(payload={"ok": 1}, approver="ann", now=2))
    first, _ = drive(h, state, finish("next", "done", 3))
    assert first.phase == "Succeeded"
    again = restart(f, first, "next")
    state, actions = drive(h, again, Start(now=10))
    assert state.phase == "Running" and [a.args for a in actions] == [{"r": {"ok": 1}, "who": ["ann"]}]


def test_a_step_that_failed_with_continue_on_error_counts_as_succeeded() -> None:
    """A failed module with continue_on_error is a Success module in Windmill's flow status: it is
    transferred, with its error object as its result."""
    f = flow(script("a", continue_on_error=True), script("b", {"prev": "previous_result"}))

    def a_fails(action: RunStep) -> Any:
        if action.path == "a":
            raise StepFailed("tolerated")
        return action.args

    first = Harness(f, a_fails).run()
    h, again = rerun(f, first, "b")
    assert steps_run(h) == ["b"]
    assert again.result == first.result
    assert again.result["prev"]["error"]["message"] == "tolerated"


def test_the_failure_module_is_not_carried_over() -> None:
    """push (RestartedFlow): the failure module is reset to WaitingForPriorSteps."""
    f = flow(script("a"), script("b"), failure_module=script("failure"))

    def b_fails(action: RunStep) -> Any:
        if action.path == "b":
            raise StepFailed("no")
        return {}

    first = Harness(f, b_fails).run()
    assert "failure" in first.steps
    assert "failure" not in restart(f, first, "b").steps


# --- what is refused -------------------------------------------------------------------------


def refusal(f: OpenFlow, source: RunStatus, step: str, source_flow: str = "test") -> str:
    with pytest.raises(RestartError) as caught:
        restart(f, source, step, source_flow)
    return str(caught.value)


def test_an_unknown_step_is_refused() -> None:
    """restarted_flows_resolution: "Flow cannot be restarted from step .. as it could not be found"."""
    first = Harness(A_B_C, echo_args).run({"n": 1})
    assert refusal(A_B_C, first, "zz") == ("flow 'test', step 'zz', field 'restartFrom.step': "
                                          "no such top-level step in the flow")


def test_a_step_inside_a_loop_is_refused_naming_the_top_level_step() -> None:
    """Only top-level modules are looked up (flow_status.modules); Windmill's branch_or_iteration_n,
    restarting a sequential loop at an iteration, is not supported."""
    f = flow(script("a"), loop("l", "[1]", [script("x")]))
    first = Harness(f, echo_args).run()
    assert "step 'x' is inside step 'l': a run restarts from a top-level step (restart from 'l')" in refusal(f, first, "x")


def test_a_step_after_one_that_failed_is_refused() -> None:
    """restarted_flows_resolution: "Flow cannot be restarted from a non successful module"."""
    def b_fails(action: RunStep) -> Any:
        if action.path == "b":
            raise StepFailed("no")
        return {}

    first = Harness(A_B_C, b_fails).run({"n": 1})
    assert "step 'b' before it did not succeed in run 'r1' (failed): restart from 'b' or before" in refusal(A_B_C, first, "c")


def test_a_step_the_earlier_run_never_reached_is_refused() -> None:
    """An early stop ends the run before the later steps (they stayed WaitingForPriorSteps)."""
    f = flow(script("a", stop_after_if={"expr": "true"}), script("b"))
    first = Harness(f, echo_args).run()
    assert first.phase == "Succeeded" and "b" not in first.steps
    assert "stopped early after step 'a' (stop_after_if)" in refusal(f, first, "b")
    cut = first.model_copy(update={"steps": {}})
    assert "never reached step 'a', which comes before it" in refusal(f, cut, "b")


def test_a_run_of_another_flow_is_refused() -> None:
    first = Harness(A_B_C, echo_args).run({"n": 1})
    assert refusal(A_B_C, first, "b", source_flow="other") == (
        "flow 'test', field 'restartFrom.run': run 'r1' is a run of flow 'other', not of this flow")


def test_a_run_that_has_not_ended_is_refused() -> None:
    """Windmill restarts completed jobs only."""
    running = RunStatus(phase="Running")
    assert "run 'r1' has not ended (running): restart a run that ended" in refusal(A_B_C, running, "a")


def test_a_step_whose_type_changed_since_is_refused() -> None:
    """The new run's flow decides (Windmill's flow_version); a recorded result of another kind of step does not fit."""
    first = Harness(A_B_C, echo_args).run({"n": 1})
    changed = flow(loop("a", "[1]", [script("x")]), script("b"), script("c"))
    assert "step 'a' is a forloopflow step in this flow but was a rawscript step in run 'r1'" in refusal(changed, first, "b")


def test_a_reused_result_that_the_shell_could_not_read_back_is_refused() -> None:
    """The shells put kept values back before restarting; one that is gone is not read as null."""
    first = Harness(A_B_C, echo_args).run({"n": 1})
    first.steps["a"] = first.steps["a"].model_copy(update={"result": None, "result_ref": "abc-1-a-1-report"})
    assert ("field 'restartFrom.run': the result of step 'a' in run 'r1' is kept in abc-1-a-1-report, which could "
            "not be read") in refusal(A_B_C, first, "b")
