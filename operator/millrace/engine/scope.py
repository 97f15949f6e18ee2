"""Result scope: what a module's expressions see, in one place.

Windmill runs every loop iteration and every branch as a sub-flow
(worker_flow.rs push_next_flow_job): its input is the enclosing flow's
input (plus `iter` in loops, insert_iter_arg), and the first step of a
sub-flow gets that input as its previous result. Errors reach expressions
as `{"error": {message, name, stack, step_id}}`.

Which results an expression can name (worker_flow.rs: every finished job is
written into the `leaf_jobs` of its flow's root job, and
get_result_by_id_from_running_flow_inner reads that map): the steps of a
branch-one, a branch-all and a sequential loop report to the enclosing flow's
root (push_next_flow_job gives their sub-flows its root job), so they stay
visible after the container, the latest finished one winning; a parallel for
loop's iterations and an inner flow are roots of their own, so their steps
are visible neither after them nor across iterations.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..model.flow import BranchAll, BranchOne, FlowModule, ForloopFlow, WhileloopFlow
from ..model.run import ErrorInfo, StepState
from .evaluate import Frame
from .outcomes import Failed
from .roots import shares_root

# Errors the engine makes when a suspension is refused (engine/approvals.py); Windmill's objects for
# them hold only message and name (push_next_flow_job builds {"error": {"message", "name"}}).
REFUSALS: frozenset[str] = frozenset({"SuspendedDisapproved", "SuspendedTimedOut"})


def error_object(error: ErrorInfo) -> dict[str, Any]:
    """A Windmill error object: exactly message, name, stack and step_id (and the
    step's result when a stop_after_if asked for it). `step_id` is the bare module
    id, as Windmill's WM_FLOW_STEP_ID is, not our module path. A process that exited
    non-zero gives message, name, step_id and exit_code instead, no stack
    (Windmill: common.rs extract_error_value, SerializedError). A refused suspension
    gives only message and name, as push_next_flow_job writes it."""
    if error.name in REFUSALS:
        return {"message": error.message, "name": error.name}
    step_id = error.step_id.rsplit("/", 1)[-1] if error.step_id else error.step_id
    if error.exit_code is not None:
        return {"message": error.message, "name": error.name, "step_id": step_id, "exit_code": error.exit_code}
    out: dict[str, Any] = {"message": error.message, "name": error.name, "stack": error.stack, "step_id": step_id}
    if error.result is not None:
        out["result"] = error.result
    return out


def error_value(error: ErrorInfo) -> dict[str, Any]:
    """How a failed step's result looks to later expressions (continue_on_error, skip_failures)."""
    return {"error": error_object(error)}


def failed(error: ErrorInfo) -> Failed:
    return Failed(error, error_value(error))


def insert_iter_arg(args: dict[str, Any], key: str, value: Any) -> None:
    """Windmill's insert_iter_arg: an outer `iter` moves to `iter_parent` (and so on up)."""
    if key in args:
        insert_iter_arg(args, f"{key}_parent", args[key])
    args[key] = value


def iteration_input(flow_input: dict[str, Any], index: int, value: Any) -> dict[str, Any]:
    args = dict(flow_input)
    insert_iter_arg(args, "iter", {"index": index, "value": value})
    return args


def body_frame(frame: Frame, flow_input: dict[str, Any], results: dict[str, Any], timeout_s: float | None,
               base_attempt: int = 0) -> Frame:
    """The frame of a sub-flow of `frame`: its input is also its first step's previous result."""
    return Frame(
        flow_input=flow_input,
        results=results,
        previous_result=flow_input,
        depth=frame.depth,
        timeout_s=tighter(frame.timeout_s, timeout_s),
        failure_module=frame.failure_module,
        base_attempt=max(frame.base_attempt, base_attempt),
    )


def tighter(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    return a if b is None else min(a, b)


def ordered(results: dict[int, Any]) -> list[Any]:
    """Iteration or branch results in index order."""
    return [results[i] for i in sorted(results)]


def join(prefix: str, part: str | int) -> str:
    return f"{prefix}/{part}" if prefix else str(part)


def published(module: FlowModule, path: str, steps: Mapping[str, StepState]) -> dict[str, Any]:
    """The results a finished container leaves visible to the steps after it: those of
    its inner steps that ended (in the order they ran), nested containers included."""
    st = steps.get(path)
    if st is None or not shares_root(module):
        return {}
    value = module.value
    if isinstance(value, (ForloopFlow, WhileloopFlow)):
        return dict(st.loop.last_body) if st.loop else {}
    if isinstance(value, BranchOne):
        if st.branch is None:
            return {}
        chosen = value.default if st.branch < 0 else value.branches[st.branch].modules
        return body_results(chosen, join(path, "default" if st.branch < 0 else st.branch), steps)
    assert isinstance(value, BranchAll)
    out: dict[str, Any] = {}
    for i, branch in enumerate(value.branches):
        out.update(body_results(branch.modules, join(path, i), steps))
    return out


def body_results(modules: list[FlowModule], prefix: str, steps: Mapping[str, StepState]) -> dict[str, Any]:
    """The results of a body's steps that ended, and what their containers published."""
    out: dict[str, Any] = {}
    for module in modules:
        path = join(prefix, module.id)
        st = steps.get(path)
        if st is None or not ended(st):
            continue
        out.update(published(module, path, steps))
        out[module.id] = st.result
    return out


def ended(st: StepState) -> bool:
    """A step whose job completed: a result (or error value) Windmill would have recorded."""
    return st.phase in ("Succeeded", "Skipped") or (st.phase == "Failed" and st.final)
