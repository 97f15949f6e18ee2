"""Branch-one and branch-all. Every branch is a sub-flow of the flow's input.

Windmill (worker_flow.rs compute_next_flow_transform,
update_flow_status_after_job_completion_internal):
- branch-all runs its branches in parallel unless `parallel: false`; a
  parallel one decides once every branch has ended;
- a stop inside a parallel branch ends that branch only; inside a sequential
  one it stops the flow, with the array of branch results so far;
- a branch-one branch's result is its last step's result; an empty branch
  passes the previous result on (push_next_flow_job, EmptyInnerFlows with a
  chosen branch);
- the steps of either stay visible after it (scope.published).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..model.flow import BranchAll, BranchOne
from ..model.run import StepState
from .evaluate import Frame
from .outcomes import WAITING, Done, Failed, Status, Stopped, Waiting
from .scope import body_frame, ordered, join
from .subflows import run_body

if TYPE_CHECKING:
    from .walker import Walker


def branchone(w: Walker, value: BranchOne, path: str, st: StepState, frame: Frame) -> Status:
    if st.branch is None:
        st.branch = -1
        for i, branch in enumerate(value.branches):
            if w.test(branch.expr, frame, path, f"branches[{i}].expr", frame.previous_result):
                st.branch = i
                break
    modules = value.default if st.branch < 0 else value.branches[st.branch].modules
    if not modules:
        return Done(frame.previous_result)
    prefix = join(path, "default" if st.branch < 0 else st.branch)
    # The branch's steps report to the enclosing flow's root: they share its results.
    inner = body_frame(frame, frame.flow_input, frame.results, st.timeout_s)
    return run_body(w, modules, prefix, inner)


def branchall(w: Walker, value: BranchAll, path: str, st: StepState, frame: Frame) -> Status:
    results: dict[int, Any] = {}
    first_failure: Failed | None = None
    waiting = False
    # A sequential branch sees the steps of the branches before it (they report to the same root job);
    # parallel branches race in Windmill, so each sees only what was there before the branch-all.
    seen = dict(frame.results)
    for i, branch in enumerate(value.branches):
        inner = body_frame(frame, frame.flow_input, dict(frame.results) if value.parallel else seen, st.timeout_s)
        status = run_body(w, branch.modules, join(path, i), inner)
        if isinstance(status, Waiting):
            waiting = True
            if not value.parallel:
                return status
            continue
        results[i] = status.result
        # A parallel branch is its own job, which a recovering failure module completes as a success.
        if isinstance(status, Failed) and not (value.parallel and status.recovered):
            if branch.skip_failure:
                continue
            if not value.parallel:
                return Failed(status.error, ordered(results), handled=status.handled)
            # Parallel branches all run to their end before the branch-all fails.
            first_failure = first_failure or status
        elif isinstance(status, Stopped) and not value.parallel:
            return Stopped(ordered(results), skip=status.skip)
    if waiting:
        return WAITING
    if first_failure is not None:
        return Failed(first_failure.error, ordered(results), handled=first_failure.handled)
    return Done(ordered(results))
