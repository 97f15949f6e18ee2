"""Windmill's flow rules, each stated as a fact about the planner and citing the
Windmill function it comes from (backend/windmill-worker/src/worker_flow.rs unless
said otherwise)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from millrace.engine.actions import RunFlow, RunStep
from millrace.engine.events import CancelRequested, Disapproved, Resumed, Start, StepFinished, Tick
from millrace.engine.library import Library
from millrace.engine.planner import plan
from millrace.engine.scope import error_object
from millrace.model.run import ErrorInfo, RunStatus
from millrace.runtime.protocol import StepOutcome

from .planner_harness import Harness, StepFailed, echo_args, flow, script
from .test_planner import branchall, branchone, drive, finish, loop


def fail(message: str) -> Any:
    raise StepFailed(message)


def identity(step_id: str, **module: Any) -> dict[str, Any]:
    return {"id": step_id, "value": {"type": "identity"}, **module}


def whileloop(step_id: str, body: list[dict[str, Any]], **module: Any) -> dict[str, Any]:
    return {"id": step_id, "value": {"type": "whileloopflow", "skip_failures": False, "modules": body}, **module}


# --- scope: what expressions see ---------------------------------------------------


def test_nested_loops_keep_the_outer_iteration_as_iter_parent() -> None:
    """insert_iter_arg renames an outer `iter` to `iter_parent`, recursively."""
    inner = loop("inner", "['a', 'b']", [script("x", {"o": "flow_input.iter_parent.value", "i": "flow_input.iter.value"})])
    state = Harness(flow(loop("outer", "[1, 2]", [inner])), echo_args).run()
    assert state.result == [[{"o": 1, "i": "a"}, {"o": 1, "i": "b"}], [{"o": 2, "i": "a"}, {"o": 2, "i": "b"}]]


def test_three_nested_loops_rename_recursively() -> None:
    """insert_iter_arg: iter -> iter_parent -> iter_parent_parent."""
    body = [script("x", {"a": "flow_input.iter_parent_parent.value", "b": "flow_input.iter_parent.value",
                         "c": "flow_input.iter.value"})]
    f = flow(loop("l1", "[1]", [loop("l2", "[2]", [loop("l3", "[3]", body)])]))
    assert Harness(f, echo_args).run().result == [[[{"a": 1, "b": 2, "c": 3}]]]


def test_the_first_step_of_a_flow_sees_the_flow_input_as_previous_result() -> None:
    """push_next_flow_job: step 0 gets the flow's arguments as its last result."""
    state = Harness(flow(script("a", {"p": "previous_result"})), echo_args).run({"n": 1})
    assert state.result == {"p": {"n": 1}}


def test_first_step_of_a_loop_body_sees_the_iteration_input_as_previous_result() -> None:
    """push_next_flow_job: the first step of a sub-flow gets the sub-flow's arguments
    (the flow input plus `iter`) as its last result."""
    f = flow(script("a"), loop("l", "[7]", [script("x", {"p": "previous_result"})]))
    h = Harness(f, lambda act: act.args if act.step_id == "x" else "from a")
    state = h.run({"n": 1})
    assert state.result == [{"p": {"n": 1, "iter": {"index": 0, "value": 7}}}]


def test_first_step_of_a_branch_sees_the_flow_input_as_previous_result() -> None:
    """push_next_flow_job / compute_next_flow_transform: a branch is a sub-flow of the flow's arguments."""
    f = flow(script("a"), branchall("b", [[script("x", {"p": "previous_result"})]], parallel=True),
             branchone("c", [("true", [script("y", {"p": "previous_result"})])], []))
    state = Harness(f, lambda act: act.args if act.step_id in ("x", "y") else "from a").run({"n": 1})
    assert state.steps["b"].result == [{"p": {"n": 1}}]
    assert state.result == {"p": {"n": 1}}


def test_a_skipped_step_is_an_identity_step() -> None:
    """push_next_flow_job: a step whose skip_if is true runs as JobPayload::Identity."""
    f = flow(script("a"), script("b", skip_if={"expr": "true"}), script("c", {"p": "previous_result", "b": "results.b"}))
    state = Harness(f, lambda act: act.args if act.step_id == "c" else "a's").run()
    assert state.steps["b"].phase == "Skipped"
    assert state.result == {"p": "a's", "b": "a's"}


def test_the_legacy_result_name_in_an_iterator_is_the_previous_result() -> None:
    """next_forloop_status binds `result` (and previous_result) to the last result."""
    f = flow(script("a"), loop("l", "result", [script("x", {"v": "flow_input.iter.value"})]))
    state = Harness(f, lambda act: [1, 2] if act.step_id == "a" else act.args["v"]).run()
    assert state.result == [1, 2]


def test_results_of_a_step_that_has_not_run_read_as_null() -> None:
    """Windmill's test_flow_results_non_existent_step: results.<unknown> evaluates to null."""
    f = flow(script("a", {"x": "results.nope", "y": "results.b"}), script("b"))
    state = Harness(f, echo_args).run()
    assert state.steps["a"].result == {"x": None, "y": None}


# --- error objects -------------------------------------------------------------------


def test_error_objects_have_exactly_message_name_stack_step_id() -> None:
    """The error of a failed job: {"error": {message, name, stack, step_id}}."""
    f = flow(script("a", continue_on_error=True), script("b", {"e": "results.a"}))
    state = Harness(f, lambda act: echo_args(act) if act.step_id == "b" else fail("bad")).run()
    assert state.result == {"e": {"error": {"message": "bad", "name": "StepFailed", "stack": "Traceback: ...", "step_id": "a"}}}


def test_error_objects_name_the_bare_module_id_inside_a_loop() -> None:
    """A step's error shows WM_FLOW_STEP_ID, the module's own id (python_executor.rs
    wrapper), not our module path `l/0/x`; and a for loop skips failures by default
    (flows.rs FlowModuleValue deserializer: skip_failures unwrap_or(true))."""
    body = [script("x")]
    f = flow({"id": "l", "value": {"type": "forloopflow", "iterator": {"type": "javascript", "expr": "[1]"},
                                   "modules": body}})
    state = Harness(f, lambda act: fail("bad")).run()
    assert state.phase == "Succeeded"
    assert state.result == [{"error": {"message": "bad", "name": "StepFailed", "stack": "Traceback: ...", "step_id": "x"}}]


def test_an_exit_code_error_has_message_name_step_id_exit_code() -> None:
    """common.rs extract_error_value: a process that exited non-zero gives
    SerializedError {message, name: ExecutionErr, step_id, exit_code}, no stack."""
    error = ErrorInfo(name="ExecutionErr", message='exit code for "bash run": 3', step_id="l/0/sh", exit_code=3)
    assert error_object(error) == {"message": 'exit code for "bash run": 3', "name": "ExecutionErr",
                                   "step_id": "sh", "exit_code": 3}


def test_a_for_loop_with_skip_failures_false_fails_on_a_failed_iteration() -> None:
    """worker_flow.rs: without skip_failures a failed iteration fails the loop."""
    f = flow({"id": "l", "value": {"type": "forloopflow", "iterator": {"type": "javascript", "expr": "[1]"},
                                   "skip_failures": False, "modules": [script("x")]}})
    assert Harness(f, lambda act: fail("bad")).run().phase == "Failed"


def test_stop_after_if_error_message_fails_with_an_early_stop_error() -> None:
    """get_stop_after_if_data: the message, or "stop after if: <expr>" when it is empty."""
    f = flow(script("a", stop_after_if={"expr": "result > 0", "error_message": ""}), script("b"))
    h = Harness(f, lambda act: 1)
    state = h.run()
    assert state.phase == "Failed" and state.error is not None
    assert (state.error.name, state.error.message) == ("EarlyStopError", "stop after if: result > 0")
    assert [a.step_id for a in h.started] == ["a"]


def test_error_include_result_puts_the_step_result_in_the_error() -> None:
    """flows.rs StopAfterIf.error_include_result: the stopping step's result goes in error.result."""
    f = flow(script("a", stop_after_if={"expr": "true", "error_message": "stop", "error_include_result": True}))
    state = Harness(f, lambda act: {"rows": 0}).run()
    assert state.error is not None and state.error.result == {"rows": 0}
    assert state.result["error"]["result"] == {"rows": 0}


def test_an_early_stop_error_runs_no_failure_module() -> None:
    """update_flow_status_after_job_completion_internal: a stop ends the flow (should_continue_flow is false)."""
    f = flow(script("a", stop_after_if={"expr": "true", "error_message": "stop"}), failure_module=script("failure"))
    h = Harness(f, lambda act: 1)
    state = h.run()
    assert state.phase == "Failed" and [a.path for a in h.started] == ["a"]


# --- early stops in loops and branches ------------------------------------------------


def test_stop_after_if_on_a_for_loop_is_tested_after_every_iteration() -> None:
    """update_flow_status_after_job_completion_internal evaluates the loop module's stop_after_if
    on each iteration's result; a stop inside a loop breaks it and the flow goes on."""
    f = flow(loop("l", "[1, 2, 3, 4]", [script("x", {"v": "flow_input.iter.value"})], ) | {"stop_after_if": {"expr": "result == 2"}},
             script("after", {"l": "results.l"}))
    h = Harness(f, lambda act: act.args if act.step_id == "after" else act.args["v"])
    state = h.run()
    assert state.phase == "Succeeded" and not state.stopped_early
    assert state.result == {"l": [1, 2]}


def test_a_for_loop_stop_after_if_sees_all_iters() -> None:
    """update_flow_status_after_job_completion_internal binds `all_iters` (the results so far)
    when a loop's stop_after_if names it."""
    f = flow(loop("l", "[1, 2, 3, 4]", [script("x", {"v": "flow_input.iter.value"})]) | {"stop_after_if": {"expr": "all_iters.length == 3"}})
    assert Harness(f, lambda act: act.args["v"]).run().result == [1, 2, 3]


def test_conditions_see_the_tested_value_as_result_and_previous_result() -> None:
    """compute_bool_from_expr binds `result` and `previous_result` to the same value: the step's
    own result for stop_after_if, the last result for skip_if and branch conditions."""
    f = flow(script("a", stop_after_if={"expr": "previous_result == 'a' && result == 'a'"}), script("b"))
    assert Harness(f, lambda act: act.step_id).run().stopped_early
    f = flow(script("a"), script("b", skip_if={"expr": "result == 'a'"}),
             branchone("c", [("result == 'a'", [script("d")])], []))
    h = Harness(f, lambda act: act.step_id)
    assert h.run().result == "d" and [a.step_id for a in h.started] == ["a", "d"]


def test_a_stop_inside_a_parallel_loop_ends_only_that_iteration() -> None:
    """Parallel iterations are counted, not broken: the stop ends its own sub-flow."""
    body = [script("x", {"v": "flow_input.iter.value"}, stop_after_if={"expr": "result == 2"}), script("y", {"v": "previous_result"})]
    f = flow(loop("l", "[1, 2, 3]", body, parallel=True), script("after", {"l": "results.l"}))
    h = Harness(f, lambda act: act.args if act.step_id == "after" else act.args["v"])
    state = h.run()
    assert state.result == {"l": [1, 2, 3]} and not state.stopped_early
    started = [a.path for a in h.started]
    assert "l/1/y" not in started and "l/2/y" in started


def test_a_stop_inside_a_parallel_branchall_ends_only_that_branch() -> None:
    f = flow(branchall("b", [[script("x", stop_after_if={"expr": "true"}), script("x2")], [script("y")]], parallel=True),
             script("after"))
    h = Harness(f, lambda act: act.step_id)
    state = h.run()
    assert state.result == "after" and state.steps["b"].result == ["x", "y"]
    assert "b/0/x2" not in state.steps


def test_a_stop_inside_a_sequential_branchall_stops_the_flow_with_the_branch_results_so_far() -> None:
    """update_flow_status_after_job_completion_internal: a sequential branch-all does not go on
    to its next branch once stopped; its result is the array of its flow jobs' results."""
    f = flow(branchall("b", [[script("x", stop_after_if={"expr": "true"})], [script("y")]], parallel=False), script("after"))
    h = Harness(f, lambda act: act.step_id)
    state = h.run()
    assert state.stopped_early and state.result == ["x"]
    assert [a.step_id for a in h.started] == ["x"]


def test_stop_after_all_iters_if_applies_to_branchall_and_while_loops() -> None:
    """update_flow_status_after_job_completion_internal: stop_after_all_iters_if on success of a loop or branch-all."""
    f = flow(branchall("b", [[script("x")], [script("y")]], parallel=True) | {"stop_after_all_iters_if": {"expr": "result.length == 2"}},
             script("after"))
    state = Harness(f, lambda act: 1).run()
    assert state.stopped_early and state.result == [1, 1]

    body = [script("x", {"i": "flow_input.iter.index"})]
    w = whileloop("w", body, stop_after_if={"expr": "result.i == 1"}, stop_after_all_iters_if={"expr": "true", "skip_if_stopped": True})
    state = Harness(flow(w, script("after")), echo_args).run()
    assert state.stopped_early and state.skipped and [r["i"] for r in state.result] == [0, 1]


def test_branchall_runs_in_parallel_by_default() -> None:
    """flows.rs FlowModuleValue::BranchAll: `parallel` defaults to true."""
    f = flow({"id": "b", "value": {"type": "branchall", "branches": [{"modules": [script("x")]}, {"modules": [script("y")]}]}})
    h = Harness(f, lambda act: act.step_id)
    assert h.run().result == ["x", "y"] and h.max_in_flight == 2


# --- failure module -------------------------------------------------------------------


def test_failure_module_sees_the_error_as_previous_result_and_error() -> None:
    """push_next_flow_job passes the failed job's result to the failure module."""
    failure = script("failure", {"p": "previous_result", "e": "error"})
    f = flow(script("a"), failure_module=failure)
    state = Harness(f, lambda act: echo_args(act) if act.path == "failure" else fail("bad")).run()
    error = {"message": "bad", "name": "StepFailed", "stack": "Traceback: ...", "step_id": "a"}
    assert state.phase == "Failed" and state.result == {"p": {"error": error}, "e": error}


def test_a_failure_module_returning_recover_true_makes_the_run_succeed() -> None:
    """update_flow_status_after_job_completion_internal: result_has_recover_true."""
    f = flow(script("a"), failure_module=script("failure"))
    state = Harness(f, lambda act: {"recover": True, "v": 1} if act.path == "failure" else fail("bad")).run()
    assert state.phase == "Succeeded" and state.result == {"recover": True, "v": 1} and state.error is None


def test_inside_a_loop_the_failure_module_runs_in_the_failing_iteration() -> None:
    """payload_from_modules gives every iteration's sub-flow the flow's failure module;
    the loop then fails with its results, the handler's result in the failed slot,
    and the handler does not run again for the flow."""
    def step(act: RunStep) -> Any:
        if act.step_id == "failure":
            return {"handled": act.args["v"]}
        if act.args["v"] == 2:
            raise StepFailed("two")
        return act.args["v"]

    f = flow(loop("l", "[1, 2, 3]", [script("x", {"v": "flow_input.iter.value"})]),
             failure_module=script("failure", {"v": "flow_input.iter.value"}))
    h = Harness(f, step)
    state = h.run()
    assert state.phase == "Failed" and state.result == [1, {"handled": 2}]
    assert [a.path for a in h.started] == ["l/0/x", "l/1/x", "l/1/failure"]


def test_recover_inside_a_sequential_loop_still_fails_the_run() -> None:
    """update_flow_status_after_job_completion_internal: a finished sub-flow reports
    `success && !is_failure_step` to its parent, so a sequential loop sees the
    recovered iteration as failed, and skip_error_handler keeps the flow's own
    failure module from running again."""
    f = flow(loop("l", "[1]", [script("x")], parallel=False), failure_module=script("failure"))
    state = Harness(f, lambda act: {"recover": True} if act.step_id == "failure" else fail("bad")).run()
    assert state.phase == "Failed" and state.result == [{"recover": True}]


def _recovering(act: RunStep) -> Any:
    if act.step_id == "failure":
        return {"recover": True, "at": act.args["v"]}
    if act.args.get("v") == 2:
        raise StepFailed("two")
    return act.args.get("v", act.step_id)


def test_recover_inside_a_parallel_loop_succeeds_that_iteration() -> None:
    """update_flow_status_after_job_completion_internal: a parallel loop decides once every
    iteration has completed, from the completed jobs' statuses, and a sub-flow whose failure
    module returned `recover: true` completed as a success (result_has_recover_true)."""
    f = flow(loop("l", "[1, 2, 3]", [script("x", {"v": "flow_input.iter.value"})], parallel=True),
             script("after", {"p": "results.l"}),
             failure_module=script("failure", {"v": "flow_input.iter.value"}))
    state = Harness(f, _recovering).run()
    assert state.phase == "Succeeded" and state.result == "after"
    assert state.steps["l"].result == [1, {"recover": True, "at": 2}, 3]


def test_recover_inside_a_parallel_branchall_succeeds_that_branch() -> None:
    """The same rule for a parallel branch-all: its branches are sub-flow jobs too."""
    f = flow(branchall("b", [[script("x", {"v": "1"})], [script("y", {"v": "2"})]], parallel=True),
             failure_module=script("failure", {"v": "2"}))
    state = Harness(f, _recovering).run()
    assert state.phase == "Succeeded" and state.result == [1, {"recover": True, "at": 2}]


# --- retries ------------------------------------------------------------------------------


def test_retry_if_sees_the_wrapped_error_as_result() -> None:
    retry = {"constant": {"attempts": 3, "seconds": 0}, "retry_if": {"expr": "result.error.name == 'StepFailed'"}}
    h = Harness(flow(script("a", retry=retry)), lambda act: fail("x"))
    assert h.run().steps["a"].attempts == 4


def test_a_step_whose_inputs_fail_is_retried_and_then_fails() -> None:
    """Windmill pushes a job whose transform failed; it fails and its retries run out."""
    f = flow(script("a", {"x": "flow_input.nope.deep"}, retry={"constant": {"attempts": 2, "seconds": 1}}))
    h = Harness(f, echo_args)
    state = h.run()
    assert state.phase == "Failed" and state.steps["a"].attempts == 3 and h.started == []


def test_a_failed_loop_is_run_again_from_its_start() -> None:
    """next_retry applies to every module: a failed loop is pushed again as a whole."""
    calls: list[str] = []

    def step(act: RunStep) -> Any:
        calls.append(act.key)
        if act.args["v"] == 2 and len(calls) < 3:
            raise StepFailed("once")
        return act.args["v"]

    f = flow(loop("l", "[1, 2]", [script("x", {"v": "flow_input.iter.value"})]) | {"retry": {"constant": {"attempts": 1, "seconds": 5}}})
    h = Harness(f, step)
    state = h.run()
    assert state.phase == "Succeeded" and state.result == [1, 2]
    # Inner attempts keep counting across the loop's runs: no attempt key is ever reused.
    assert calls == ["l/0/x/1", "l/1/x/1", "l/0/x/2", "l/1/x/2"]
    assert state.steps["l"].attempts == 2


def test_a_failed_branch_and_inner_flow_are_run_again() -> None:
    inner = flow(script("x"))
    f = flow(branchall("b", [[script("y")]], parallel=True) | {"retry": {"constant": {"attempts": 1, "seconds": 0}}},
             {"id": "sub", "value": {"type": "flow", "path": "f/inner", "input_transforms": {}},
              "retry": {"constant": {"attempts": 1, "seconds": 0}}})
    tries: dict[str, int] = {}

    def step(act: RunStep) -> Any:
        tries[act.path] = tries.get(act.path, 0) + 1
        if tries[act.path] == 1:
            raise StepFailed("first")
        return act.key

    state = Harness(f, step, library=Library(flows={"f/inner": inner})).run()
    assert state.phase == "Succeeded"
    assert state.steps["b"].result == ["b/0/y/2"] and state.result == "sub/x/2"


def test_child_flow_runs_are_retried_with_a_new_attempt() -> None:
    inner = flow(script("x"))
    f = flow({"id": "sub", "value": {"type": "flow", "path": "f/inner", "input_transforms": {}},
              "retry": {"constant": {"attempts": 1, "seconds": 0}}})
    h = Harness(f, echo_args, library=Library(flows={"f/inner": inner}))
    ctx = replace(h.context(), child_flows=True)
    first = plan(ctx, RunStatus(), Start(now=0))
    failed = plan(ctx, first.state, StepFinished(path="sub", attempt=1, outcome=StepOutcome(ok=False), now=1))
    assert failed.actions == [RunFlow(path="sub", attempt=2, step_id="sub", flow_path="f/inner", args={}, depth=1)]


# --- approvals ----------------------------------------------------------------------------


def test_a_suspend_without_required_events_does_not_suspend() -> None:
    """needs_resume: a suspend whose required_events is missing or 0 is not one."""
    for suspend in ({}, {"required_events": 0}):
        h = Harness(flow(script("ask", suspend=suspend), script("next")), echo_args)
        state = h.run()
        assert state.phase == "Succeeded" and [a.step_id for a in h.started] == ["ask", "next"]


def test_only_the_step_right_after_an_approval_sees_it() -> None:
    """needs_resume looks at the previous module only; transform_input binds resume,
    resumes and approvers to null, [] and [] otherwise."""
    names = {"r": "resume", "rs": "resumes", "who": "approvers"}
    f = flow(script("ask", suspend={"required_events": 1}), script("next", names), script("later", names))
    h = Harness(f, echo_args)
    state, _ = drive(h, RunStatus(), Start(now=0))
    state, _ = drive(h, state, finish("ask", 1, 1))
    state, actions = drive(h, state, Resumed(payload={"ok": 1}, approver="ann", now=2))
    assert actions[0].args == {"r": {"ok": 1}, "rs": [{"ok": 1}], "who": ["ann"]}
    state, actions = drive(h, state, finish("next", 2, 3))
    assert actions[0].args == {"r": None, "rs": [], "who": []}


def test_a_disapproval_fails_the_run_it_does_not_cancel_it() -> None:
    """push_next_flow_job: SuspendedDisapproved, "Disapproved by <approver>", the failure of the
    module it was about to push (update_flow_status_after_job_completion_internal at that step)."""
    h = Harness(flow(script("ask", suspend={"required_events": 1}), script("next")), echo_args)
    state, _ = drive(h, RunStatus(), Start(now=0))
    state, _ = drive(h, state, finish("ask", 1, 1))
    state, actions = drive(h, state, Disapproved(approver="ann", now=2))
    assert state.phase == "Failed" and state.error is not None and actions == []
    assert (state.error.name, state.error.message, state.error.step_id) == ("SuspendedDisapproved", "Disapproved by ann", "next")
    assert (state.steps["ask"].phase, state.steps["next"].phase, state.steps["next"].attempts) == ("Succeeded", "Failed", 0)


def test_the_failure_module_sees_a_disapproval_as_message_and_name_only() -> None:
    """push_next_flow_job: a refused suspension completes the flow with
    {"error": {"message": "Disapproved by ...", "name": "SuspendedDisapproved"}}, no stack, no step_id."""
    f = flow(script("ask", suspend={"required_events": 1}), script("next"),
             failure_module=script("failure", {"e": "error", "p": "previous_result"}))
    h = Harness(f, echo_args)
    state, _ = drive(h, RunStatus(), Start(now=0))
    state, _ = drive(h, state, finish("ask", 1, 1))
    state, actions = drive(h, state, Disapproved(approver="ann", now=2))
    refusal = {"message": "Disapproved by ann", "name": "SuspendedDisapproved"}
    assert [a.step_id for a in actions] == ["failure"]
    assert actions[0].args == {"e": refusal, "p": {"error": refusal}}


def test_continue_on_disapprove_timeout_goes_on_after_a_disapproval_with_the_error_as_resume() -> None:
    f = flow(script("ask", suspend={"required_events": 1, "continue_on_disapprove_timeout": True}),
             script("next", {"r": "resume", "who": "approvers"}))
    h = Harness(f, echo_args)
    state, _ = drive(h, RunStatus(), Start(now=0))
    state, _ = drive(h, state, finish("ask", 1, 1))
    state, actions = drive(h, state, Disapproved(approver="ann", now=2))
    assert state.phase == "Running"
    assert actions[0].args == {"r": {"error": {"message": "Disapproved by ann", "name": "SuspendedDisapproved"}}, "who": ["ann"]}


def test_a_cancel_of_a_suspended_run_is_still_a_cancel() -> None:
    h = Harness(flow(script("ask", suspend={"required_events": 1}), script("next")), echo_args)
    state, _ = drive(h, RunStatus(), Start(now=0))
    state, _ = drive(h, state, finish("ask", 1, 1))
    state, _ = drive(h, state, CancelRequested(reason="no longer needed", by="ann", now=2))
    assert state.phase == "Cancelled"


def test_a_suspend_without_timeout_times_out_after_30_minutes() -> None:
    """push_next_flow_job: suspend_until = now + timeout, 30 * 60 s when none is given."""
    h = Harness(flow(script("ask", suspend={"required_events": 1}), script("next")), echo_args)
    state, _ = drive(h, RunStatus(), Start(now=0))
    result = plan(h.context(), state, finish("ask", 1, 1))
    assert result.wake_at == 1 + 1800


def test_the_continue_on_error_of_the_next_module_covers_an_approval_timeout() -> None:
    """The refusal is the failure of the module after the suspended one: its continue_on_error applies
    (update_flow_status_after_job_completion_internal reads continue_on_error at the current step)."""
    timeout = {"message": "Timed out waiting to be resumed", "name": "SuspendedTimedOut"}
    f = flow(script("ask", suspend={"required_events": 1, "timeout": 5}), script("next", continue_on_error=True),
             script("after", {"p": "previous_result"}))
    h = Harness(f, echo_args)
    state, _ = drive(h, RunStatus(), Start(now=0))
    state, _ = drive(h, state, finish("ask", 1, 1))
    state, actions = drive(h, state, Tick(now=10))
    assert [a.step_id for a in actions] == ["after"] and actions[0].args == {"p": {"error": timeout}}
    # The suspended module's own continue_on_error does not: it succeeded.
    f = flow(script("ask", suspend={"required_events": 1, "timeout": 5}, continue_on_error=True), script("next"))
    h = Harness(f, echo_args)
    state, _ = drive(h, RunStatus(), Start(now=0))
    state, _ = drive(h, state, finish("ask", 1, 1))
    state, _ = drive(h, state, Tick(now=10))
    assert state.phase == "Failed" and state.error is not None and state.error.name == "SuspendedTimedOut"


def test_a_suspend_or_sleep_on_the_last_module_of_a_flow_is_not_waited_for() -> None:
    """push_next_flow_job waits for the previous module's approvals and sleep as it pushes the next module:
    after a flow's (or a branch's, or an iteration's) last module there is none."""
    f = flow(script("a"), script("ask", suspend={"required_events": 1}, sleep={"type": "static", "value": 60}))
    state = Harness(f, lambda act: act.step_id).run()
    assert (state.phase, state.result) == ("Succeeded", "ask")
    body = [script("ask", suspend={"required_events": 1})]
    state = Harness(flow(loop("l", "[1, 2]", body), script("after")), lambda act: act.step_id).run()
    assert state.phase == "Succeeded" and state.steps["l"].result == ["ask", "ask"]


# --- sleep and timeouts ----------------------------------------------------------------------


def test_sleep_is_evaluated_with_the_step_own_result() -> None:
    """push_next_flow_job evaluates the previous module's sleep with result = its result."""
    h = Harness(flow(script("a", sleep={"type": "javascript", "expr": "result.wait"}), script("b")), echo_args)
    state, _ = drive(h, RunStatus(), Start(now=0))
    result = plan(h.context(), state, finish("a", {"wait": 12}, 5))
    assert result.actions == [] and result.wake_at == 17


def test_timeout_on_a_container_bounds_every_job_inside() -> None:
    body = [script("x", timeout=100), script("y", timeout=5)]
    f = flow(loop("l", "[1]", body) | {"timeout": 30}, branchone("b", [("true", [script("z")])], []) | {"timeout": 7})
    h = Harness(f, lambda act: 1)
    h.run()
    assert [(a.path, a.timeout_s) for a in h.started] == [("l/0/x", 30), ("l/0/y", 5), ("b/0/z", 7)]


def test_timeout_on_an_inner_flow_bounds_its_steps_and_child_runs() -> None:
    inner = flow(script("x", timeout=60))
    sub = {"id": "sub", "value": {"type": "flow", "path": "f/inner", "input_transforms": {}}, "timeout": 9}
    h = Harness(flow(loop("l", "[1]", [sub]) | {"timeout": 20}), lambda act: 1, library=Library(flows={"f/inner": inner}))
    h.run()
    assert [(a.path, a.timeout_s) for a in h.started] == [("l/0/sub/x", 9)]
    ctx = replace(h.context(), child_flows=True)
    first = plan(ctx, RunStatus(), Start(now=0))
    assert [a.timeout_s for a in first.actions if isinstance(a, RunFlow)] == [9]
    child = replace(Harness(inner, echo_args).context(), timeout_s=5)
    assert [a.timeout_s for a in plan(child, RunStatus(), Start(now=0)).actions] == [5]


# --- continue_on_error on containers and every failure path -----------------------------------


def test_continue_on_error_on_a_failed_loop_gives_its_results() -> None:
    f = flow(loop("l", "[1, 2]", [script("x", {"v": "flow_input.iter.value"})]) | {"continue_on_error": True},
             script("after", {"l": "results.l"}))
    state = Harness(f, lambda act: echo_args(act) if act.step_id == "after" else (fail("no") if act.args["v"] == 2 else 1)).run()
    assert state.phase == "Succeeded"
    assert state.result["l"][0] == 1 and state.result["l"][1]["error"]["message"] == "no"


def test_continue_on_error_covers_transform_and_skip_if_errors() -> None:
    f = flow(script("a", {"x": "flow_input.nope.deep"}, continue_on_error=True),
             script("b", skip_if={"expr": "flow_input.nope.deep"}, continue_on_error=True),
             script("c", {"a": "results.a.error.name", "b": "results.b.error.name"}))
    state = Harness(f, echo_args).run()
    assert state.result == {"a": "ExpressionRuntimeError", "b": "ExpressionRuntimeError"}


# --- recursion -------------------------------------------------------------------------------------


def test_a_flow_calling_itself_stops_at_the_depth_limit() -> None:
    me = flow({"id": "again", "value": {"type": "flow", "path": "f/me", "input_transforms": {}}})
    h = Harness(me, echo_args, library=Library(flows={"f/me": me}))
    state = h.run()
    assert state.phase == "Failed" and state.error is not None and state.error.name == "FlowDepthExceeded"
    assert "call itself" in state.error.message


def test_child_runs_carry_their_depth_and_stop_at_the_limit() -> None:
    me = flow({"id": "again", "value": {"type": "flow", "path": "f/me", "input_transforms": {}}})
    h = Harness(me, echo_args, library=Library(flows={"f/me": me}))
    ctx = replace(h.context(), child_flows=True, depth=3)
    first = plan(ctx, RunStatus(), Start(now=0))
    assert [a.depth for a in first.actions if isinstance(a, RunFlow)] == [4]
    deep = plan(replace(ctx, depth=ctx.max_depth), RunStatus(), Start(now=0))
    assert deep.state.phase == "Failed" and deep.state.error is not None and deep.state.error.name == "FlowDepthExceeded"
