"""Finished loop iterations are compacted: their inner step states leave the run state and
their results join the loop's sealed chunks. Nothing an expression sees changes."""

from __future__ import annotations

import random
from typing import Any

import pytest

from millrace.engine.actions import RunStep
from millrace.engine.loops import results
from millrace.model.run import RESULT_CHUNK, LoopProgress

from .planner_harness import Harness, StepFailed, flow, script
from .test_planner import loop

N = 2 * RESULT_CHUNK + 37  # crosses sealed chunks and leaves a partial one


def _value(act: RunStep) -> Any:
    return act.args


def test_a_long_sequential_loop_sees_the_same_results_before_and_after_compaction() -> None:
    body = [script("x", {"i": "flow_input.iter.index", "so_far": "results.l", "before": "results.x"}),
            script("y", {"v": "previous_result.i * 2"})]
    f = flow(loop("l", f"Array.from({{length: {N}}}, (_, i) => i)", body),
             script("after", {"all": "previous_result", "named": "results.l", "y": "results.y"}))
    h = Harness(f, lambda a: {"x": {"i": a.args.get("i")}, "y": a.args.get("v")}.get(a.step_id, a.args), reload=True)
    state = h.run(max_events=3 * N)
    expected = [2 * i for i in range(N)]
    assert state.result == {"all": expected, "named": expected, "y": expected[-1]}
    xs = [a.args for a in h.started if a.step_id == "x"]
    # Each iteration sees every result before it, and the body's results of the iteration before it.
    assert all(x["so_far"] == expected[:x["i"]] for x in xs)
    assert [x["before"] for x in xs] == [None] + [{"i": i} for i in range(N - 1)]
    # Only the running iteration's steps are ever in the state: the loop, its body, the step after.
    assert h.max_steps <= 3
    assert set(state.steps) == {"l", "after"}


@pytest.mark.parametrize("seed", range(4))
def test_a_parallel_loop_in_any_order_gives_its_results_in_index_order(seed: int) -> None:
    f = flow(loop("l", f"Array.from({{length: {N}}}, (_, i) => i)", [script("x", {"i": "flow_input.iter.index"})],
                  parallel=True, parallelism={"type": "static", "value": 7}),
             script("after", {"n": "results.l.length", "l": "results.l"}))
    h = Harness(f, _value, order=random.Random(seed), reload=seed % 2 == 0)
    state = h.run(max_events=3 * N)
    assert state.result == {"n": N, "l": [{"i": i} for i in range(N)]}
    assert h.max_in_flight == 7 and h.max_steps <= 7 + 2
    # Every step left the state with its outcome handed to the shell.
    assert {p for p, st in h.compacted.items() if st.phase == "Succeeded"} == {f"l/{i}/x" for i in range(N)}


def test_stop_after_if_sees_all_iters_and_breaks_a_compacted_loop() -> None:
    f = flow(loop("l", f"Array.from({{length: {N}}}, (_, i) => i)", [script("x", {"i": "flow_input.iter.index"})])
             | {"stop_after_if": {"expr": f"all_iters.length == {RESULT_CHUNK + 5} && result.i == {RESULT_CHUNK + 4}"}})
    state = Harness(f, _value).run(max_events=3 * N)
    assert state.result == [{"i": i} for i in range(RESULT_CHUNK + 5)]


def test_failures_of_a_parallel_loop_keep_their_slots_and_the_first_by_index_fails_it() -> None:
    def step(act: RunStep) -> Any:
        if act.args["i"] in (150, 40):
            raise StepFailed(f"no {act.args['i']}")
        return act.args["i"]

    f = flow(loop("l", f"Array.from({{length: {N}}}, (_, i) => i)", [script("x", {"i": "flow_input.iter.index"})],
                  parallel=True, parallelism={"type": "static", "value": 5}))
    state = Harness(f, step, order=random.Random(3)).run(max_events=3 * N)
    assert state.phase == "Failed" and state.error is not None and state.error.message == "no 40"
    assert len(state.result) == N and state.result[41] == 41 and "error" in state.result[150]


def test_a_loop_run_again_never_reuses_an_attempt_key() -> None:
    keys: list[str] = []

    def step(act: RunStep) -> Any:
        keys.append(act.key)
        if act.args["i"] == 3 and keys.count(act.key) == 1 and len(keys) < 10:
            raise StepFailed("once")
        return act.args["i"]

    body = [script("x", {"i": "flow_input.iter.index"}) | {"retry": {"constant": {"attempts": 2, "seconds": 0}}}]
    f = flow(loop("l", "[0, 1, 2, 3, 4]", body) | {"retry": {"constant": {"attempts": 1, "seconds": 0}}})
    state = Harness(f, step).run()
    assert state.phase == "Succeeded" and state.result == [0, 1, 2, 3, 4]
    assert len(keys) == len(set(keys))


def test_results_below_an_index_read_sealed_chunks_and_pending_ones() -> None:
    p = LoopProgress(chunks={1: list(range(RESULT_CHUNK, 2 * RESULT_CHUNK))},
                     pending={i: i for i in list(range(RESULT_CHUNK)) + [2 * RESULT_CHUNK + 3]})
    assert results(p) == list(range(2 * RESULT_CHUNK)) + [2 * RESULT_CHUNK + 3]
    assert results(p, below=RESULT_CHUNK + 10) == list(range(RESULT_CHUNK + 10))
    assert results(p, below=5) == [0, 1, 2, 3, 4]
