"""Property: the order in which parallel steps finish does not change the run's outcome.

Windmill counts parallel iterations and branches as they complete
(worker_flow.rs update_flow_status_after_job_completion_internal) and reads
their results in the order they were started, whatever order they ended in.
"""

from __future__ import annotations

import random
from typing import Any

from millrace.engine.actions import RunStep
from millrace.model.run import RunStatus

from .planner_harness import Harness, StepFailed, flow, script
from .test_planner import branchall, loop

# Fields that say when something happened, which depends on the order by construction.
_TIMES = {"started_at", "finished_at", "not_before", "sleep_until", "awaiting_since"}


def _step(action: RunStep) -> Any:
    value = action.args.get("v")
    if value == 3:
        raise StepFailed("three")
    return {"id": action.step_id, "v": value}


def _flow():
    inner = branchall("b", [[script("x", {"v": "flow_input.iter.value"})],
                            [script("y", {"v": "flow_input.iter.value * 10"}),
                             script("z", {"v": "previous_result.v + 1"}, stop_after_if={"expr": "result.v > 40"})]],
                      parallel=True, skip=True)
    return flow(
        loop("l", "[1, 2, 3, 4, 5]", [inner], parallel=True, parallelism={"type": "static", "value": 3}, skip_failures=True),
        loop("m", "[1, 2, 3, 4]", [script("w", {"v": "flow_input.iter.value"}, continue_on_error=True)], parallel=True),
        script("last", {"v": "results.l.length + results.m.length"}),
    )


def _outcome(state: RunStatus) -> dict[str, Any]:
    dump = state.model_dump(exclude=_TIMES)
    dump["steps"] = {p: {k: v for k, v in st.items() if k not in _TIMES} for p, st in dump["steps"].items()}
    return dump


def test_random_completion_orders_give_the_same_final_state() -> None:
    reference = _outcome(Harness(_flow(), _step).run())
    assert reference["phase"] == "Succeeded"
    for seed in range(40):
        h = Harness(_flow(), _step, order=random.Random(seed))
        assert _outcome(h.run()) == reference, f"seed {seed}"


def test_random_orders_of_a_failing_parallel_loop_fail_the_same_way() -> None:
    f = flow(loop("l", "[1, 2, 3, 4, 5]", [script("x", {"v": "flow_input.iter.value"})], parallel=True,
                  parallelism={"type": "static", "value": 2}))
    reference = _outcome(Harness(f, _step).run())
    assert reference["phase"] == "Failed" and reference["result"][3] == {"id": "x", "v": 4}
    for seed in range(30):
        assert _outcome(Harness(f, _step, order=random.Random(seed)).run()) == reference, f"seed {seed}"
