"""For and while loops. Every iteration is a sub-flow (scope.iteration_input).

A loop's per-iteration bookkeeping is here alone: which iterations started
(`StepState.started`), each iteration's status from its inner steps, and the
body results carried from one iteration to the next.

Windmill (worker_flow.rs update_flow_status_after_job_completion_internal):
- a stop inside the body of a sequential loop breaks the loop and the flow
  goes on; in a parallel loop it ends that iteration only;
- `stop_after_if` on a sequential for loop is tested after every iteration
  with `result` = that iteration's result; true breaks the loop (on a
  parallel loop Windmill does not evaluate it);
- on a while loop it is the loop's exit test, likewise;
- a failed iteration fails the loop (unless skip_failures) with the results
  so far, the failed iteration's result in its slot; a parallel loop first
  lets every iteration end (it decides once all have completed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..model.flow import FlowModule, ForloopFlow, WhileloopFlow
from ..model.run import ErrorInfo, StepState
from .evaluate import Frame, StepFailure
from .outcomes import WAITING, Done, Failed, Status, Stopped, Waiting
from .scope import body_frame, iteration_input, join, ordered
from .subflows import run_body

if TYPE_CHECKING:
    from .walker import Walker


def forloop(w: Walker, module: FlowModule, loop: ForloopFlow, path: str, st: StepState, frame: Frame) -> Status:
    if st.items is None:
        # The legacy name `result` in an iterator is the previous step's result.
        items = w.transform(loop.iterator, frame, path, "iterator", extra={"result": frame.previous_result})
        if not isinstance(items, list):
            raise StepFailure(ErrorInfo(
                name="IteratorError",
                message=f"the iterator must evaluate to an array, got {type(items).__name__}",
                step_id=path,
            ))
        st.items = items
        st.parallelism = _parallelism(w, loop, frame, path)
    total = len(st.items)
    width = (st.parallelism or total or 1) if loop.parallel else 1
    results: dict[int, Any] = {}
    first_failure: Failed | None = None
    active = 0
    for index in range(total):
        if index >= st.started:
            if active >= width:
                break
            st.started += 1
        status = _iteration(w, loop.modules, path, st, index, st.items[index], frame, ordered(results))
        if isinstance(status, Waiting):
            active += 1
            continue
        results[index] = status.result
        # A parallel iteration is its own job, which a recovering failure module completes as a success.
        if isinstance(status, Failed) and not (loop.parallel and status.recovered):
            if loop.skip_failures:
                continue
            if not loop.parallel:
                return Failed(status.error, ordered(results), handled=status.handled)
            # Parallel iterations all run to their end before the loop fails.
            first_failure = first_failure or status
        elif not loop.parallel and (isinstance(status, Stopped)
                                    or _breaks(w, module, path, st, index, ordered(results), frame)):
            return Done(ordered(results))
    if active or len(results) < total:
        return WAITING
    if first_failure is not None:
        return Failed(first_failure.error, ordered(results), handled=first_failure.handled)
    return Done(ordered(results))


def whileloop(w: Walker, module: FlowModule, loop: WhileloopFlow, path: str, st: StepState, frame: Frame) -> Status:
    results: list[Any] = []
    index = 0
    while True:
        if index >= st.started:
            if index >= w.ctx.max_while_iterations:
                raise StepFailure(ErrorInfo(
                    name="LoopLimit",
                    message=f"the while loop did not stop after {w.ctx.max_while_iterations} iterations",
                    step_id=path,
                ))
            st.started += 1
        status = _iteration(w, loop.modules, path, st, index, index, frame, list(results))
        if isinstance(status, Waiting):
            return status
        results.append(status.result)
        if isinstance(status, Failed):
            if not loop.skip_failures:
                return Failed(status.error, results, handled=status.handled)
        elif isinstance(status, Stopped) or _breaks(w, module, path, st, index, results, frame):
            return Done(results)
        index += 1


def _parallelism(w: Walker, loop: ForloopFlow, frame: Frame, path: str) -> int | None:
    if not loop.parallel or loop.parallelism is None:
        return None
    value = w.number(loop.parallelism, frame, path, "parallelism")
    return max(1, int(value)) if value else None


def _breaks(w: Walker, module: FlowModule, path: str, st: StepState, index: int, all_iters: list[Any],
            frame: Frame) -> bool:
    """A loop's own stop_after_if, tested once after each iteration with that iteration's
    result (and, as Windmill names it, `all_iters`: every result so far)."""
    result = all_iters[-1]
    if module.stop_after_if is None or index < st.tested:
        return False
    if w.test(module.stop_after_if.expr, frame, path, "stop_after_if.expr", result, {"all_iters": all_iters}):
        return True
    st.tested = index + 1
    return False


def _iteration(w: Walker, body: list[FlowModule], path: str, st: StepState, index: int, value: Any,
               frame: Frame, so_far: list[Any]) -> Status:
    """One iteration sees the outer results, the loop's results so far under the
    loop's id and, as Windmill does, the body's results of the iteration before it."""
    carried = w.carried.get(path, {})
    loop_id = path.rsplit("/", 1)[-1]
    results = {**frame.results, **carried, loop_id: so_far}
    inner = body_frame(frame, iteration_input(frame.flow_input, index, value), results, st.timeout_s)
    status = run_body(w, body, join(path, index), inner)
    if isinstance(status, (Done, Stopped)):
        w.carried[path] = {k: v for k, v in inner.results.items() if k not in frame.results and k != loop_id}
    return status


def last_iteration(w: Walker, body: list[FlowModule], path: str) -> dict[str, Any]:
    """The body's results in the loop's last iteration that has any: they stay visible after the loop."""
    st = w.state.steps[path]
    for index in range(st.started - 1, -1, -1):
        prefix = join(path, index)
        found = {m.id: w.state.steps[p].result for m in body
                 if (p := join(prefix, m.id)) in w.state.steps and w.state.steps[p].phase == "Succeeded"}
        if found:
            return found
    return {}
