"""The planner, driven by a synchronous fake shell: every control-flow rule."""

from __future__ import annotations

from typing import Any

import pytest

from millrace.engine.actions import RunStep
from millrace.engine.events import Start, StepFinished
from millrace.engine.library import Library, ScriptSource
from millrace.engine.planner import plan
from millrace.model.run import RunStatus
from millrace.runtime.protocol import StepOutcome

from .planner_harness import Harness, StepFailed, echo_args, flow, script


def fail(message: str) -> Any:
    raise StepFailed(message)


def by_id(results: dict[str, Any]):
    def step(action: RunStep) -> Any:
        value = results[action.step_id]
        return value(action) if callable(value) else value
    return step


# --- sequences and wiring -----------------------------------------------------


def test_results_and_flow_input_wire_steps_in_order() -> None:
    f = flow(
        script("a", {"x": "flow_input.n * 2"}),
        script("b", {"prev": "previous_result.x", "a": "results.a.x + 1"}),
    )
    h = Harness(f, echo_args)
    state = h.run({"n": 5})
    assert state.phase == "Succeeded"
    assert state.result == {"prev": 10, "a": 11}
    assert [a.step_id for a in h.started] == ["a", "b"]
    assert state.steps["a"].phase == "Succeeded"


def test_static_transforms_and_params_is_always_empty() -> None:
    """Windmill: worker_flow.rs transform_input binds `params` to {} before any argument is evaluated."""
    f = flow({"id": "a", "value": {"type": "rawscript", "language": "bash", "content": "echo", "input_transforms": {
        "x": {"type": "static", "value": [1, 2]},
        "y": {"type": "javascript", "expr": "JSON.stringify(params)"},
    }}})
    state = Harness(f, echo_args).run()
    assert state.result == {"x": [1, 2], "y": "{}"}


def test_identity_passes_previous_result() -> None:
    f = flow(script("a"), {"id": "i", "value": {"type": "identity"}})
    state = Harness(f, lambda a: 7).run()
    assert state.result == 7


def test_empty_flow_returns_its_input() -> None:
    """Windmill: push_next_flow_job ends a flow without modules with its arguments as result."""
    state = Harness(flow(), echo_args).run({"a": 1})
    assert state.phase == "Succeeded" and state.result == {"a": 1}


# --- inputs ---------------------------------------------------------------------


SCHEMA = {
    "type": "object",
    "properties": {
        "email": {"type": "string", "format": "email"},
        "host": {"type": "string", "format": "hostname"},
        "ip": {"type": "string", "format": "ipv4"},
        "code": {"type": "string", "pattern": "^[A-Z]{3}$"},
        "n": {"type": "integer", "default": 3},
    },
    "required": ["email"],
}


def test_schema_defaults_are_applied() -> None:
    f = flow(script("a", {"n": "flow_input.n"}), schema=SCHEMA)
    state = Harness(f, echo_args).run({"email": "a@b.co"})
    assert state.result == {"n": 3}
    assert state.args["n"] == 3


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({}, "email"),
        ({"email": "not-an-email"}, "email"),
        ({"email": "a@b.co", "host": "bad host!"}, "host"),
        ({"email": "a@b.co", "ip": "300.1.1.1"}, "ip"),
        ({"email": "a@b.co", "code": "abc"}, "code"),
        ({"email": "a@b.co", "n": "three"}, "n"),
    ],
)
def test_bad_inputs_fail_before_any_step(args: dict[str, Any], field: str) -> None:
    h = Harness(flow(script("a"), schema=SCHEMA), echo_args)
    state = h.run(args)
    assert state.phase == "Failed"
    assert state.error is not None and state.error.name == "InputError"
    assert field in state.error.message
    assert h.started == []


# --- for loops --------------------------------------------------------------------


def loop(step_id: str, iterator: str, body: list[dict[str, Any]], **options: Any) -> dict[str, Any]:
    return {
        "id": step_id,
        "value": {"type": "forloopflow", "iterator": {"type": "javascript", "expr": iterator}, "modules": body,
                  "skip_failures": options.pop("skip_failures", False), **options},
    }


def test_sequential_for_loop_runs_one_iteration_at_a_time() -> None:
    f = flow(loop("l", "[10, 20, 30]", [script("x", {"v": "flow_input.iter.value", "i": "flow_input.iter.index"})]))
    h = Harness(f, lambda a: a.args["v"] + a.args["i"])
    state = h.run()
    assert state.result == [10, 21, 32]
    assert h.max_in_flight == 1
    assert [a.path for a in h.started] == ["l/0/x", "l/1/x", "l/2/x"]


def test_parallel_for_loop_respects_parallelism() -> None:
    f = flow(loop("l", "[1,2,3,4,5]", [script("x", {"v": "flow_input.iter.value"})], parallel=True,
                  parallelism={"type": "static", "value": 2}))
    h = Harness(f, lambda a: a.args["v"] * 10)
    state = h.run()
    assert state.result == [10, 20, 30, 40, 50]
    assert h.max_in_flight == 2


def test_parallel_for_loop_without_limit_starts_everything() -> None:
    f = flow(loop("l", "[1,2,3,4]", [script("x")], parallel=True))
    h = Harness(f, lambda a: 1)
    h.run()
    assert h.max_in_flight == 4


def test_for_loop_body_sees_outer_results_and_its_own() -> None:
    f = flow(
        script("a"),
        loop("l", "results.a", [script("x", {"v": "flow_input.iter.value"}), script("y", {"x": "results.x", "a": "results.a.length"})]),
    )
    h = Harness(f, by_id({"a": [1, 2], "x": lambda act: act.args["v"] + 100, "y": echo_args}))
    state = h.run()
    assert state.result == [{"x": 101, "a": 2}, {"x": 102, "a": 2}]


def test_for_loop_skip_failures_keeps_the_error() -> None:
    def step(action: RunStep) -> Any:
        if action.args["v"] == 2:
            raise StepFailed("two is bad")
        return action.args["v"]

    f = flow(loop("l", "[1,2,3]", [script("x", {"v": "flow_input.iter.value"})], skip_failures=True))
    state = Harness(f, step).run()
    assert state.phase == "Succeeded"
    assert state.result[0] == 1 and state.result[2] == 3
    assert state.result[1]["error"]["message"] == "two is bad"


def test_for_loop_failure_fails_the_run_naming_the_iteration_step() -> None:
    def step(action: RunStep) -> Any:
        raise StepFailed("boom")

    state = Harness(flow(loop("l", "[1,2]", [script("x")])), step).run()
    assert state.phase == "Failed"
    assert state.error is not None and state.error.step_id == "l/0/x"
    assert state.error.stack == "Traceback: ..."


def test_empty_iterator_gives_empty_array() -> None:
    state = Harness(flow(loop("l", "[]", [script("x")])), echo_args).run()
    assert state.result == []


def test_iterator_that_is_not_an_array_fails_naming_the_field() -> None:
    state = Harness(flow(loop("l", "42", [script("x")])), echo_args).run()
    assert state.phase == "Failed"
    assert state.error is not None and "array" in state.error.message and state.error.step_id == "l"


def test_break_inside_for_loop_ends_the_loop_not_the_flow() -> None:
    body = [script("x", {"v": "flow_input.iter.value"}, stop_after_if={"expr": "result >= 2"})]
    f = flow(loop("l", "[1,2,3,4]", body), script("after", {"l": "results.l"}))
    h = Harness(f, lambda a: a.args.get("v", a.args))
    state = h.run()
    assert state.phase == "Succeeded"
    assert state.result == {"l": [1, 2]}


def test_stop_after_all_iters_if_on_loop_stops_flow() -> None:
    f = flow({**loop("l", "[1,2]", [script("x")]), "stop_after_all_iters_if": {"expr": "result.length == 2"}}, script("after"))
    h = Harness(f, lambda a: 1)
    state = h.run()
    assert state.stopped_early and state.result == [1, 1]
    assert "after" not in {a.step_id for a in h.started}


# --- while loops ----------------------------------------------------------------


def test_while_loop_runs_until_a_step_breaks() -> None:
    body = [script("x", {"i": "flow_input.iter.index"}, stop_after_if={"expr": "result.i == 3"})]
    f = flow({"id": "w", "value": {"type": "whileloopflow", "skip_failures": False, "modules": body}})
    state = Harness(f, echo_args).run()
    assert state.phase == "Succeeded"
    assert [r["i"] for r in state.result] == [0, 1, 2, 3]


def test_while_loop_without_exit_hits_the_limit() -> None:
    f = flow({"id": "w", "value": {"type": "whileloopflow", "skip_failures": False, "modules": [script("x")]}})
    state = Harness(f, lambda a: 1).run()
    assert state.phase == "Failed"
    assert state.error is not None and state.error.name == "LoopLimit"


# --- branches -------------------------------------------------------------------


def branchone(step_id: str, branches: list[tuple[str, list[dict[str, Any]]]], default: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": step_id, "value": {"type": "branchone", "default": default,
                                      "branches": [{"expr": e, "modules": m} for e, m in branches]}}


def test_branchone_takes_the_first_truthy_branch() -> None:
    f = flow(branchone("b", [("flow_input.n > 10", [script("big")]), ("flow_input.n > 1", [script("mid")]),
                             ("true", [script("any")])], [script("small")]))
    h = Harness(f, lambda a: a.step_id)
    assert h.run({"n": 5}).result == "mid"
    assert [a.path for a in h.started] == ["b/1/mid"]


def test_branchone_falls_back_to_default_and_results_are_visible_after() -> None:
    f = flow(branchone("b", [("false", [script("x")])], [script("d")]), script("after", {"d": "results.d"}))
    h = Harness(f, lambda a: a.args if a.step_id == "after" else "from-default")
    state = h.run()
    assert state.result == {"d": "from-default"}
    assert state.steps["b"].branch == -1


def test_branchone_with_empty_branch_passes_previous_result() -> None:
    """Windmill: push_next_flow_job passes the last result on for an empty chosen branch."""
    f = flow(script("a"), branchone("b", [("true", [])], []))
    assert Harness(f, lambda a: "prev").run().result == "prev"


def branchall(step_id: str, branches: list[list[dict[str, Any]]], parallel: bool, skip: bool = False) -> dict[str, Any]:
    return {"id": step_id, "value": {"type": "branchall", "parallel": parallel,
                                      "branches": [{"modules": m, "skip_failure": skip} for m in branches]}}


def test_branchall_parallel_runs_branches_together() -> None:
    f = flow(branchall("b", [[script("x")], [script("y")], [script("z")]], parallel=True))
    h = Harness(f, lambda a: a.step_id)
    assert h.run().result == ["x", "y", "z"]
    assert h.max_in_flight == 3


def test_branchall_sequential_runs_one_branch_at_a_time() -> None:
    f = flow(branchall("b", [[script("x")], [script("y")]], parallel=False))
    h = Harness(f, lambda a: a.step_id)
    assert h.run().result == ["x", "y"]
    assert h.max_in_flight == 1


def test_branchall_skip_failure_keeps_the_error() -> None:
    def step(action: RunStep) -> Any:
        if action.step_id == "y":
            raise StepFailed("nope")
        return 1

    f = flow(branchall("b", [[script("x")], [script("y")]], parallel=True, skip=True))
    state = Harness(f, step).run()
    assert state.phase == "Succeeded"
    assert state.result[0] == 1 and state.result[1]["error"]["message"] == "nope"


def test_parallel_branchall_fails_once_every_branch_ended() -> None:
    """Windmill (worker_flow.rs update_flow_status_after_job_completion_internal): a parallel
    branch-all decides once all its branches completed; the failure carries every result."""
    def step(action: RunStep) -> Any:
        if action.step_id == "x":
            raise StepFailed("nope")
        return action.step_id

    f = flow(branchall("b", [[script("x")], [script("y")]], parallel=True))
    h = Harness(f, step)
    state = h.run()
    assert state.phase == "Failed" and h.cancelled == []
    assert state.result[1] == "y" and state.result[0]["error"]["message"] == "nope"


# --- early stop and skip -----------------------------------------------------------


def test_stop_after_if_ends_the_flow_early_as_success() -> None:
    f = flow(script("a", stop_after_if={"expr": "result.length == 0"}), script("b"))
    h = Harness(f, lambda a: [])
    state = h.run()
    assert state.phase == "Succeeded" and state.stopped_early and not state.skipped
    assert [a.step_id for a in h.started] == ["a"]


def test_stop_after_if_with_skip_marks_the_run_skipped() -> None:
    f = flow(script("a", stop_after_if={"expr": "true", "skip_if_stopped": True}), script("b"))
    state = Harness(f, lambda a: 1).run()
    assert state.skipped


def test_stop_after_if_with_error_message_fails() -> None:
    f = flow(script("a", stop_after_if={"expr": "true", "error_message": "no data"}))
    state = Harness(f, lambda a: 1).run()
    # Windmill: worker_flow.rs update_flow_status_after_job_completion_internal names it EarlyStopError.
    assert state.phase == "Failed" and state.error is not None
    assert (state.error.name, state.error.message) == ("EarlyStopError", "no data")


def test_stop_inside_a_branch_stops_the_flow() -> None:
    f = flow(branchone("b", [("true", [script("x", stop_after_if={"expr": "true"})])], []), script("after"))
    h = Harness(f, lambda a: "x")
    state = h.run()
    assert state.stopped_early and [a.step_id for a in h.started] == ["x"]


def test_skip_if_skips_the_step_and_keeps_previous_result() -> None:
    f = flow(script("a"), script("b", skip_if={"expr": "previous_result == 'a'"}), {"id": "i", "value": {"type": "identity"}})
    h = Harness(f, lambda act: act.step_id)
    state = h.run()
    assert state.steps["b"].phase == "Skipped"
    assert state.result == "a"


def test_mocked_step_returns_its_value_without_running() -> None:
    f = flow(script("a", mock={"enabled": True, "return_value": {"m": 1}}))
    h = Harness(f, echo_args)
    assert h.run().result == {"m": 1}
    assert h.started == []


# --- errors, retries, failure module ----------------------------------------------------


def test_expression_error_fails_the_step_naming_the_field() -> None:
    f = flow(script("a", {"x": "flow_input.missing.deep"}))
    state = Harness(f, echo_args).run()
    assert state.phase == "Failed"
    assert state.error is not None and state.error.step_id == "a"
    assert "input_transforms.x" in state.error.message


def test_retry_constant_then_exponential_with_delays() -> None:
    calls: list[float] = []

    h: Harness

    def step(action: RunStep) -> Any:
        calls.append(h.now)
        raise StepFailed("flaky")

    retry = {"constant": {"attempts": 2, "seconds": 5}, "exponential": {"attempts": 2, "multiplier": 2, "seconds": 3}}
    h = Harness(flow(script("a", retry=retry)), step)
    state = h.run()
    assert state.phase == "Failed"
    assert state.steps["a"].attempts == 5
    # The harness spends 1 s per step run; the rest of each gap is the delay.
    # Windmill (flows.rs Retry::interval): multiplier * seconds ^ failures so far, constant ones included.
    delays = [round(b - a - 1) for a, b in zip(calls, calls[1:])]
    assert delays == [5, 5, 2 * 3**3, 2 * 3**4]


def test_retry_succeeds_on_a_later_attempt() -> None:
    attempts: list[int] = []

    def step(action: RunStep) -> Any:
        attempts.append(action.attempt)
        if action.attempt < 3:
            raise StepFailed("not yet")
        return "ok"

    state = Harness(flow(script("a", retry={"constant": {"attempts": 5, "seconds": 1}})), step).run()
    assert state.phase == "Succeeded" and state.result == "ok"
    assert attempts == [1, 2, 3]


def test_retry_if_can_refuse_a_retry() -> None:
    retry = {"constant": {"attempts": 5, "seconds": 1}, "retry_if": {"expr": "result.error.message != 'fatal'"}}
    h = Harness(flow(script("a", retry=retry)), lambda a: fail("fatal"))
    state = h.run()
    assert state.steps["a"].attempts == 1


def test_continue_on_error_turns_the_error_into_a_result() -> None:
    f = flow(script("a", continue_on_error=True), script("b", {"e": "results.a.error.message"}))
    h = Harness(f, lambda act: echo_args(act) if act.step_id == "b" else fail("bad"))
    state = h.run()
    assert state.phase == "Succeeded" and state.result == {"e": "bad"}


def test_failure_module_sees_the_error() -> None:
    failure = script("failure", {"msg": "error.message", "step": "error.step_id"})
    f = flow(script("a"), failure_module=failure)
    h = Harness(f, lambda act: echo_args(act) if act.path == "failure" else fail("bad"))
    state = h.run()
    assert state.phase == "Failed"
    assert state.result == {"msg": "bad", "step": "a"}
    assert state.error is not None and state.error.message == "bad"


def test_failure_module_that_fails_reports_both_errors() -> None:
    f = flow(script("a"), failure_module=script("failure"))
    state = Harness(f, lambda act: fail(f"bad {act.path}")).run()
    assert state.phase == "Failed"
    assert state.error is not None and "bad a" in state.error.message and "bad failure" in state.error.message


# --- scripts and sub-flows by path ------------------------------------------------------


def test_script_by_path_comes_from_the_library() -> None:
    f = flow({"id": "s", "value": {"type": "script", "path": "f/x/hello", "input_transforms": {}}})
    lib = Library(scripts={"f/x/hello": ScriptSource("f/x/hello", "bash", "echo hi")})
    h = Harness(f, lambda a: a.code, library=lib)
    state = h.run()
    assert state.result == "echo hi" and h.started[0].language == "bash"


def test_missing_script_fails_the_step() -> None:
    f = flow({"id": "s", "value": {"type": "script", "path": "f/x/none", "input_transforms": {}}})
    state = Harness(f, echo_args).run()
    assert state.phase == "Failed" and state.error is not None and "f/x/none" in state.error.message


def test_subflow_runs_with_its_own_inputs_and_results() -> None:
    inner = flow(script("x", {"v": "flow_input.v + 1"}), schema={"type": "object", "properties": {"v": {"type": "integer"}}, "required": ["v"]})
    f = flow(script("x"), {"id": "sub", "value": {"type": "flow", "path": "f/inner", "input_transforms": {"v": {"type": "javascript", "expr": "results.x"}}}})
    h = Harness(f, lambda a: 1 if a.path == "x" else a.args["v"] * 100, library=Library(flows={"f/inner": inner}))
    state = h.run()
    assert state.result == 200
    assert [a.path for a in h.started] == ["x", "sub/x"]


# --- purity and idempotency -----------------------------------------------------------


def test_replayed_step_result_changes_nothing() -> None:
    h = Harness(flow(script("a"), script("b")), echo_args)
    ctx = h.context()
    first = plan(ctx, RunStatus(), Start(now=1))
    done = StepFinished(path="a", attempt=1, outcome=StepOutcome(ok=True, result=1), now=2)
    second = plan(ctx, first.state, done)
    replay = plan(ctx, second.state, done)
    assert [a.path for a in second.actions] == ["b"]
    assert replay.actions == []
    assert replay.state == second.state


def test_plan_does_not_mutate_its_input_and_is_deterministic() -> None:
    h = Harness(flow(loop("l", "[1,2,3]", [script("x")], parallel=True)), echo_args)
    ctx = h.context()
    start = Start(now=1)
    empty = RunStatus()
    a = plan(ctx, empty, start)
    b = plan(ctx, empty, start)
    assert empty == RunStatus()
    assert a.state == b.state and a.actions == b.actions


def test_events_after_the_end_are_ignored() -> None:
    h = Harness(flow(script("a")), echo_args)
    ctx = h.context()
    first = plan(ctx, RunStatus(), Start(now=1))
    done = plan(ctx, first.state, StepFinished(path="a", attempt=1, outcome=StepOutcome(ok=True, result=1), now=2))
    assert done.state.phase == "Succeeded"
    again = plan(ctx, done.state, StepFinished(path="a", attempt=1, outcome=StepOutcome(ok=False), now=3))
    assert again.state == done.state


# --- suspend, sleep, early return, cancel ---------------------------------------------


def drive(h: Harness, state: RunStatus, event: Any) -> tuple[RunStatus, list[Any]]:
    result = plan(h.context(), state, event)
    return result.state, result.actions


def finish(path: str, result: Any, now: float, attempt: int = 1) -> StepFinished:
    return StepFinished(path=path, attempt=attempt, outcome=StepOutcome(ok=True, result=result), now=now)


def test_suspend_waits_for_approvals_then_next_step_sees_them() -> None:
    from millrace.engine.events import Resumed

    f = flow(script("ask", suspend={"required_events": 2, "timeout": 100}),
             script("next", {"r": "resume", "all": "resumes", "who": "approvers"}))
    h = Harness(f, echo_args)
    state, _ = drive(h, RunStatus(), Start(now=0))
    state, actions = drive(h, state, finish("ask", "asked", 1))
    assert state.phase == "Suspended" and state.suspended_step == "ask" and actions == []
    state, actions = drive(h, state, Resumed(payload={"ok": 1}, approver="ann", now=2))
    assert state.phase == "Suspended" and actions == []
    state, actions = drive(h, state, Resumed(payload={"ok": 2}, approver="bob", now=3))
    assert state.phase == "Running"
    assert actions[0].args == {"r": {"ok": 2}, "all": [{"ok": 1}, {"ok": 2}], "who": ["ann", "bob"]}


def test_suspend_timeout_fails_the_run() -> None:
    from millrace.engine.events import Tick

    f = flow(script("ask", suspend={"required_events": 1, "timeout": 10}), script("next"))
    h = Harness(f, echo_args)
    state, _ = drive(h, RunStatus(), Start(now=0))
    result = plan(h.context(), state, finish("ask", 1, 1))
    assert result.wake_at == 11
    state, _ = drive(h, result.state, Tick(now=11))
    assert state.phase == "Failed" and state.error is not None and state.error.name == "SuspendedTimedOut"


def test_suspend_timeout_can_continue() -> None:
    from millrace.engine.events import Tick

    f = flow(script("ask", suspend={"required_events": 1, "timeout": 10, "continue_on_disapprove_timeout": True}),
             script("next", {"r": "resume"}))
    h = Harness(f, echo_args)
    state, _ = drive(h, RunStatus(), Start(now=0))
    state, _ = drive(h, state, finish("ask", 1, 1))
    state, actions = drive(h, state, Tick(now=12))
    # Windmill: push_next_flow_job appends the timeout error as the last resume.
    assert state.phase == "Running"
    assert actions[0].args == {"r": {"error": {"message": "Timed out waiting to be resumed", "name": "SuspendedTimedOut"}}}


def test_cancel_while_suspended() -> None:
    from millrace.engine.events import CancelRequested

    h = Harness(flow(script("ask", suspend={"required_events": 1}), script("next")), echo_args)
    state, _ = drive(h, RunStatus(), Start(now=0))
    state, _ = drive(h, state, finish("ask", 1, 1))
    state, actions = drive(h, state, CancelRequested(reason="disapproved", by="ann", now=2))
    assert state.phase == "Cancelled" and state.error is not None and "ann" in state.error.message


def test_sleep_after_a_step_delays_the_next() -> None:
    h = Harness(flow(script("a", sleep={"type": "static", "value": 30}), script("b")), echo_args)
    state, _ = drive(h, RunStatus(), Start(now=0))
    result = plan(h.context(), state, finish("a", 1, 5))
    assert result.actions == [] and result.wake_at == 35


def test_early_return_publishes_a_result_before_the_end() -> None:
    h = Harness(flow(script("a"), script("b"), early_return="a"), echo_args)
    state, _ = drive(h, RunStatus(), Start(now=0))
    state, _ = drive(h, state, finish("a", "early", 1))
    assert state.phase == "Running" and state.early_returned and state.early_result == "early"


def test_loop_body_sees_the_previous_iteration_and_the_flow_sees_the_last() -> None:
    body = [script("acc", {"prev": "results.acc ?? 0", "i": "flow_input.iter.index"},
                   stop_after_if={"expr": "result >= 3"})]
    f = flow({"id": "w", "value": {"type": "whileloopflow", "skip_failures": False, "modules": body}},
             script("after", {"last": "results.acc"}))
    h = Harness(f, lambda a: a.args if a.step_id == "after" else a.args["prev"] + 1)
    state = h.run()
    assert state.result == {"last": 3}
    assert [a.args.get("prev") for a in h.started if a.step_id == "acc"] == [0, 1, 2]


def test_inside_a_loop_its_own_id_gives_the_results_so_far() -> None:
    body = [script("x", {"before": "results.l.length", "v": "flow_input.iter.value"})]
    h = Harness(flow(loop("l", "[5, 6, 7]", body)), lambda a: a.args)
    state = h.run()
    assert [r["before"] for r in state.result] == [0, 1, 2]


def test_an_approval_after_the_suspend_timeout_is_too_late() -> None:
    from millrace.engine.events import Resumed

    f = flow(script("ask", suspend={"required_events": 1, "timeout": 10}), script("next", {"r": "resume"}))
    h = Harness(f, echo_args)
    state, _ = drive(h, RunStatus(), Start(now=0))
    state, _ = drive(h, state, finish("ask", 1, 1))  # the deadline is 11
    state, actions = drive(h, state, Resumed(payload={"ok": 1}, approver="ann", now=50))
    assert state.phase == "Failed" and state.error is not None and state.error.name == "SuspendedTimedOut"
    assert actions == []


def test_inner_flows_can_run_as_runs_of_their_own() -> None:
    from dataclasses import replace

    from millrace.engine.actions import RunFlow

    inner = flow(script("x"), schema={"type": "object", "properties": {"v": {"type": "integer", "default": 7}}})
    f = flow({"id": "sub", "value": {"type": "flow", "path": "f/inner", "input_transforms": {}}}, script("after", {"r": "results.sub"}))
    h = Harness(f, echo_args, library=Library(flows={"f/inner": inner}))
    ctx = replace(h.context(), child_flows=True)
    first = plan(ctx, RunStatus(), Start(now=0))
    assert first.actions == [RunFlow(path="sub", attempt=1, step_id="sub", flow_path="f/inner", args={"v": 7})]
    done = plan(ctx, first.state, StepFinished(path="sub", attempt=1, outcome=StepOutcome(ok=True, result=42), now=1))
    assert [a.args for a in done.actions] == [{"r": 42}]
    failed = plan(ctx, first.state, StepFinished(path="sub", attempt=1, outcome=StepOutcome(ok=False), now=1))
    assert failed.state.phase == "Failed" and failed.state.error is not None and failed.state.error.step_id == "sub"
