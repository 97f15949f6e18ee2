"""For and while loops. Every iteration is a sub-flow (scope.iteration_input).

A loop's per-iteration bookkeeping is here alone: which iterations started
(`StepState.started`), each iteration's status from its inner steps, and the
body results carried from one iteration to the next. An iteration that ends
is compacted at once (model.run.LoopProgress): its result joins the loop's
results, its inner step states leave the run state, and later walks visit
only the iterations still active, so a walk costs the same whatever the
number of finished iterations. The results so far are built only when an
expression reads them (expressions.Deferred) or the loop ends.

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

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..expressions import Deferred
from ..model.flow import FlowModule, ForloopFlow, WhileloopFlow
from ..model.run import RESULT_CHUNK, ErrorInfo, LoopProgress, StepState
from .evaluate import Frame, StepFailure
from .outcomes import WAITING, Done, Failed, Status, Stopped, Waiting
from . import scope
from .scope import body_frame, iteration_input, join
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
    p = st.loop = _writable(st.loop)
    walking = p.active
    p.active = []
    for index in _indices(walking, st, p, total, width):
        status = _iteration(w, loop.modules, path, st, p, index, st.items[index], frame, shared=not loop.parallel)
        if isinstance(status, Waiting):
            p.active.append(index)
            continue
        # A parallel iteration is its own job, which a recovering failure module completes as a success.
        if isinstance(status, Failed) and not (loop.parallel and status.recovered):
            if loop.skip_failures:
                continue
            if not loop.parallel:
                return _end(st, p, Failed(status.error, results(p), handled=status.handled))
            # Parallel iterations all run to their end before the loop fails: the first by index fails it.
            if p.failure is None or index < p.failure_index:
                p.failure, p.failure_index, p.failure_handled = status.error, index, status.handled
        elif not loop.parallel and (isinstance(status, Stopped) or _breaks(w, module, path, p, status.result, frame)):
            return _end(st, p, Done(results(p)))
    if p.active or p.finished < total:
        return WAITING
    if p.failure is not None:
        return _end(st, p, Failed(p.failure, results(p), handled=p.failure_handled))
    return _end(st, p, Done(results(p)))


def _indices(walking: list[int], st: StepState, p: LoopProgress, total: int, width: int) -> Iterator[int]:
    """The active iterations in index order, then new ones while fewer than `width` are waiting.

    `st.started` counts a new iteration as it is handed out; the caller appends the
    ones still waiting to the loop's active list, which bounds how many more start.
    """
    yield from walking
    while st.started < total and len(p.active) < width:
        st.started += 1
        yield st.started - 1


def whileloop(w: Walker, module: FlowModule, loop: WhileloopFlow, path: str, st: StepState, frame: Frame) -> Status:
    p = st.loop = _writable(st.loop)
    index = p.active[0] if p.active else st.started
    p.active = []
    while True:
        if index >= st.started:
            if index >= w.ctx.max_while_iterations:
                raise StepFailure(ErrorInfo(
                    name="LoopLimit",
                    message=f"the while loop did not stop after {w.ctx.max_while_iterations} iterations",
                    step_id=path,
                ))
            st.started += 1
        status = _iteration(w, loop.modules, path, st, p, index, index, frame, shared=True)
        if isinstance(status, Waiting):
            p.active = [index]
            return status
        if isinstance(status, Failed):
            if not loop.skip_failures:
                return _end(st, p, Failed(status.error, results(p), handled=status.handled))
        elif isinstance(status, Stopped) or _breaks(w, module, path, p, status.result, frame):
            return _end(st, p, Done(results(p)))
        index += 1


def _parallelism(w: Walker, loop: ForloopFlow, frame: Frame, path: str) -> int | None:
    if not loop.parallel or loop.parallelism is None:
        return None
    value = w.number(loop.parallelism, frame, path, "parallelism")
    return max(1, int(value)) if value else None


def _breaks(w: Walker, module: FlowModule, path: str, p: LoopProgress, result: Any, frame: Frame) -> bool:
    """A loop's own stop_after_if, tested once after each iteration (as it is compacted) with
    that iteration's result and, as Windmill names it, `all_iters`: every result so far."""
    if module.stop_after_if is None:
        return False
    return w.test(module.stop_after_if.expr, frame, path, "stop_after_if.expr", result,
                  {"all_iters": Deferred(lambda: results(p))})


def _iteration(w: Walker, body: list[FlowModule], path: str, st: StepState, p: LoopProgress, index: int,
               value: Any, frame: Frame, shared: bool) -> Status:
    """One iteration sees the outer results, the loop's results so far under the
    loop's id and, in a loop whose iterations report to the enclosing root job
    (`shared`: a sequential one, scope.shares_root), the body's results of the
    iteration before it (the latest finished one below it)."""
    carried = p.carried if shared and p.carried_index < index else {}
    loop_id = path.rsplit("/", 1)[-1]
    results_ = {**frame.results, **carried, loop_id: Deferred(lambda: results(p, below=index))}
    inner = body_frame(frame, iteration_input(frame.flow_input, index, value), results_, st.timeout_s, p.floor)
    prefix = join(path, index)
    status = run_body(w, body, prefix, inner)
    if not isinstance(status, Waiting):
        body_results = {k: v for k, v in inner.results.items() if k not in frame.results and k != loop_id}
        _compact(w, p, prefix, body, index, status, body_results if shared else None)
    return status


def _compact(w: Walker, p: LoopProgress, prefix: str, body: list[FlowModule], index: int,
             status: Done | Stopped | Failed, body_results: dict[str, Any] | None) -> None:
    """Move a finished iteration into the loop's results and drop its inner step states;
    `body_results` (None in a loop whose body is not visible outside its iteration) are kept
    for the next iteration, and the body's step results for the steps after the loop."""
    steps = w.state.steps
    if body_results is not None:
        found = scope.body_results(body, prefix, steps)
        if found and index > p.last_body_index:
            # Windmill's leaf_jobs keep every step's latest result: one an iteration skipped stays.
            p.last_body, p.last_body_index = {**p.last_body, **found}, index
        if isinstance(status, (Done, Stopped)) and index > p.carried_index:
            p.carried, p.carried_index = body_results, index
    for inner in [q for q in steps if q.startswith(prefix + "/")]:
        gone = w.compacted[inner] = steps.pop(inner)
        p.inner_attempts = max(p.inner_attempts, attempts_within(gone))
    p.pending[index] = status.result
    p.finished += 1
    chunk = index // RESULT_CHUNK
    first = chunk * RESULT_CHUNK
    if all(i in p.pending for i in range(first, first + RESULT_CHUNK)):
        p.chunks[chunk] = [p.pending.pop(i) for i in range(first, first + RESULT_CHUNK)]


def results(p: LoopProgress, below: int | None = None) -> list[Any]:
    """The finished iterations' results in index order (only those below `below` if given)."""
    by_chunk: dict[int, list[Any]] = {}
    for i in sorted(p.pending):
        if below is None or i < below:
            by_chunk.setdefault(i // RESULT_CHUNK, []).append(p.pending[i])
    out: list[Any] = []
    for chunk in sorted(set(p.chunks) | set(by_chunk)):
        if chunk in p.chunks:
            sealed = p.chunks[chunk]
            out.extend(sealed if below is None else sealed[:max(0, below - chunk * RESULT_CHUNK)])
        else:
            out.extend(by_chunk[chunk])
    return out


def _writable(p: LoopProgress | None) -> LoopProgress:
    """The loop's progress, copied for this walk: the state before it is left as it was."""
    if p is None:
        return LoopProgress()
    return p.model_copy(update={"active": list(p.active), "pending": dict(p.pending), "chunks": dict(p.chunks)})


def _end(st: StepState, p: LoopProgress, status: Status) -> Status:
    """The loop ended: its results live in the loop's own result from now on, and no iteration
    follows (a loop run again evaluates its iterator again)."""
    p.pending, p.chunks, p.carried = {}, {}, {}
    st.items = None
    return status


def attempts_within(st: StepState) -> int:
    """The highest attempt count of a step and of every inner step compacted under it."""
    return max(st.attempts, st.loop.inner_attempts if st.loop else 0)


def restarted(p: LoopProgress | None, deeper: int) -> LoopProgress | None:
    """A loop run again: nothing of its last run but an attempt floor above every attempt it made."""
    floor = max(deeper, p.floor, p.inner_attempts) if p else deeper
    return LoopProgress(floor=floor, inner_attempts=floor) if floor else None

