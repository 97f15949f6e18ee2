"""Which results an expression can name, walk after walk.

Windmill (worker_flow.rs update_flow_status_after_job_completion_internal)
writes every finished job into the `leaf_jobs` of its flow's root job, and
`results.<id>` reads that map (windmill-queue get_result_by_id_from_running_flow_inner,
then the parent flow's). push_next_flow_job gives the sub-flows of branch-one,
branch-all and sequential loops the enclosing root job, and none to a parallel
for loop's iterations or to an inner flow: so steps inside the first stay
visible after them, steps inside the others do not (they read as null, as in
test_flow_results_non_existent_step).

Every test puts a step between the container and the step that reads it: the
container is then already finished when the reader's inputs are evaluated,
in a later walk than the one that ended it.
"""

from __future__ import annotations

from typing import Any

import pytest

from millrace.engine.actions import RunStep
from millrace.engine.library import Library
from millrace.model.run import RestartFrom

from millrace.engine.restart import restarted

from .planner_harness import Harness, StepFailed, echo_args, flow, script
from .test_planner import branchall, branchone, loop


def named(results: dict[str, Any]):
    """Steps named in `results` return that value; every other step returns its arguments."""
    def step(action: RunStep) -> Any:
        if action.step_id not in results:
            return action.args
        value = results[action.step_id]
        if isinstance(value, Exception):
            raise value
        return value
    return step


@pytest.mark.parametrize("reload", [False, True], ids=["in-memory", "reloaded"])
def test_a_branchone_step_stays_visible_after_a_later_step(reload: bool) -> None:
    f = flow(
        branchone("b", [("flow_input.big", [script("inside")])], [script("small")]),
        script("between"),
        script("reader", {"inside": "results.inside", "small": "results.small", "b": "results.b"}),
    )
    h = Harness(f, named({"inside": "in", "small": "s", "between": 1}), reload=reload)
    state = h.run({"big": True})
    assert state.result == {"inside": "in", "small": None, "b": "in"}


def test_a_branchone_default_step_stays_visible_after_a_later_step() -> None:
    f = flow(branchone("b", [("false", [script("x")])], [script("d1"), script("d2")]),
             script("between"), script("reader", {"d1": "results.d1", "d2": "results.d2"}))
    state = Harness(f, named({"d1": 1, "d2": 2, "between": 0})).run()
    assert state.result == {"d1": 1, "d2": 2}


@pytest.mark.parametrize("parallel", [True, False], ids=["parallel", "sequential"])
def test_every_branchall_step_stays_visible_after_a_later_step(parallel: bool) -> None:
    f = flow(branchall("b", [[script("x")], [script("y1"), script("y2")]], parallel=parallel),
             script("between"), script("reader", {"x": "results.x", "y1": "results.y1", "y2": "results.y2"}))
    state = Harness(f, named({"x": "X", "y1": "Y1", "y2": "Y2", "between": 0})).run()
    assert state.result == {"x": "X", "y1": "Y1", "y2": "Y2"}


def test_a_sequential_branchall_branch_sees_the_steps_of_the_branches_before_it() -> None:
    """parallel: false runs the branches one after the other, each reporting to the same root job."""
    f = flow(branchall("b", [[script("x")], [script("y", {"x": "results.x"})]], parallel=False))
    state = Harness(f, named({"x": "X"})).run()
    assert state.result == ["X", {"x": "X"}]


def test_a_parallel_branchall_branch_does_not_see_another_branch() -> None:
    """Parallel branches race in Windmill; millrace gives each the results from before the branch-all."""
    f = flow(script("a"), branchall("b", [[script("x")], [script("y", {"x": "results.x", "a": "results.a"})]],
                                    parallel=True))
    state = Harness(f, named({"a": "A", "x": "X"})).run()
    assert state.result == ["X", {"x": None, "a": "A"}]


def test_a_failed_step_inside_a_branch_is_visible_as_its_error() -> None:
    f = flow(branchone("b", [("true", [script("x", continue_on_error=True)])], []),
             script("between"), script("reader", {"x": "results.x.error.message"}))
    state = Harness(f, named({"x": StepFailed("bad"), "between": 0})).run()
    assert state.result == {"x": "bad"}


def test_a_branch_inside_a_branch_publishes_its_steps_through_both() -> None:
    inner = branchone("inner", [("true", [script("deep")])], [])
    f = flow(branchone("outer", [("true", [inner, script("next")])], []),
             script("between"), script("reader", {"deep": "results.deep", "next": "results.next"}))
    state = Harness(f, named({"deep": "D", "next": "N", "between": 0})).run()
    assert state.result == {"deep": "D", "next": "N"}


def test_a_branch_inside_a_loop_iteration_is_visible_later_in_that_iteration() -> None:
    body = [branchone("b", [("true", [script("x", {"v": "flow_input.iter.value"})])], []),
            script("between"), script("reader", {"x": "results.x.v"})]
    f = flow(loop("l", "[1, 2]", body))
    state = Harness(f, named({"between": 0})).run()
    assert state.result == [{"x": 1}, {"x": 2}]


def test_a_branch_inside_a_sequential_loop_is_visible_after_the_loop() -> None:
    body = [branchone("b", [("true", [script("x", {"v": "flow_input.iter.value"})])], [])]
    f = flow(loop("l", "[1, 2, 3]", body), script("between"), script("reader", {"x": "results.x.v"}))
    state = Harness(f, named({"between": 0})).run()
    assert state.result == {"x": 3}


def test_a_step_only_an_earlier_iteration_ran_stays_visible_after_the_loop() -> None:
    """leaf_jobs keep each step's latest result: the last iteration took the other branch."""
    body = [branchone("b", [("flow_input.iter.value == 1", [script("one")])], [script("other")])]
    f = flow(loop("l", "[1, 2]", body), script("between"),
             script("reader", {"one": "results.one", "other": "results.other"}))
    state = Harness(f, named({"one": "1", "other": "2", "between": 0})).run()
    assert state.result == {"one": "1", "other": "2"}


def test_the_last_iteration_of_a_sequential_loop_stays_visible_after_a_later_step() -> None:
    f = flow(loop("l", "[1, 2]", [script("x", {"v": "flow_input.iter.value"})]),
             script("between"), script("reader", {"x": "results.x.v"}))
    state = Harness(f, named({"between": 0})).run()
    assert state.result == {"x": 2}


def test_a_while_loop_body_stays_visible_after_it() -> None:
    f = flow({"id": "w", "stop_after_if": {"expr": "result.i >= 1"},
              "value": {"type": "whileloopflow", "modules": [script("x", {"i": "flow_input.iter.index"})]}},
             script("between"), script("reader", {"x": "results.x.i"}))
    state = Harness(f, named({"between": 0})).run()
    assert state.result == {"x": 1}


def test_a_parallel_loop_body_is_not_visible_after_the_loop() -> None:
    """push_next_flow_job: a parallel for loop's iterations are jobs with no root job, their own roots."""
    f = flow(loop("l", "[1, 2]", [script("x", {"v": "flow_input.iter.value"})], parallel=True),
             script("reader", {"x": "results.x", "l": "results.l"}))
    state = Harness(f, echo_args).run()
    assert state.result == {"x": None, "l": [{"v": 1}, {"v": 2}]}


def test_a_parallel_loop_iteration_does_not_see_the_one_before() -> None:
    f = flow(loop("l", "[1, 2, 3]", [script("x", {"seen": "results.x", "v": "flow_input.iter.value"})],
                  parallel=True, parallelism=1))
    state = Harness(f, echo_args).run()
    assert state.result == [{"seen": None, "v": 1}, {"seen": None, "v": 2}, {"seen": None, "v": 3}]


def test_a_sequential_loop_iteration_sees_the_one_before() -> None:
    f = flow(loop("l", "[1, 2]", [script("x", {"seen": "results.x", "v": "flow_input.iter.value"})]))
    state = Harness(f, echo_args).run()
    assert state.result == [{"seen": None, "v": 1}, {"seen": {"seen": None, "v": 1}, "v": 2}]


def test_an_inner_flow_step_is_not_visible_after_it() -> None:
    inner = flow(script("deep"))
    f = flow({"id": "sub", "value": {"type": "flow", "path": "f/inner", "input_transforms": {}}},
             script("reader", {"deep": "results.deep", "sub": "results.sub"}))
    state = Harness(f, named({"deep": "D"}), library=Library(flows={"f/inner": inner})).run()
    assert state.result == {"deep": None, "sub": "D"}


def test_a_branch_reused_by_a_restart_still_publishes_its_steps() -> None:
    f = flow(branchone("b", [("true", [script("inside")])], []), script("reader", {"inside": "results.inside"}))
    first = Harness(f, named({"inside": "in"})).run()
    start = restarted("test", f, "test", first, RestartFrom(run="r1", step="reader"))
    h = Harness(f, named({"inside": "changed"}))
    state = h.run(initial=start)
    assert [a.path for a in h.started] == ["reader"]
    assert state.result == {"inside": "in"}
