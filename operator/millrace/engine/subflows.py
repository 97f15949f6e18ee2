"""Sub-flow bodies with their failure module, and inner flows by path.

Windmill gives every sub-flow of a flow (loop iteration, branch) that flow's
failure module (worker_flow.rs payload_from_modules); an inner flow by path
has its own. The failure module sees previous_result = the failed step's
`{"error": {...}}` and `error` = its error object; a result with
`recover: true` makes the run a success, but only at the top: a parent
always sees its sub-flow as failed, with the failure module's result as the
sub-flow's result.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..model.flow import FlowModule, PathFlow
from ..model.run import ErrorInfo, StepState
from .actions import RunFlow
from .evaluate import Frame, StepFailure
from .inputs import InputError, validate_inputs
from .outcomes import WAITING, Done, Failed, Status, Stopped, Waiting
from .paths import FAILURE_MODULE_PATH
from .scope import error_object, join, tighter

if TYPE_CHECKING:
    from .walker import Walker


def run_body(w: Walker, modules: list[FlowModule], prefix: str, frame: Frame) -> Status:
    status = w.sequence(modules, prefix, frame)
    if not isinstance(status, Failed) or status.handled or frame.failure_module is None:
        return status
    return _handle_failure(w, frame.failure_module, status, prefix, frame)


def _handle_failure(w: Walker, module: FlowModule, failure: Failed, prefix: str, frame: Frame) -> Status:
    error = error_object(failure.error)
    handler = Frame(
        flow_input=frame.flow_input,
        results=dict(frame.results),
        previous_result={"error": error},
        extra={"error": error},
        depth=frame.depth,
        timeout_s=frame.timeout_s,
        base_attempt=frame.base_attempt,
    )
    status = w.module(module, join(prefix, FAILURE_MODULE_PATH), handler)
    if isinstance(status, Waiting):
        return status
    if isinstance(status, Failed):
        message = f"{failure.error.message} (and the failure module failed: {status.error.message})"
        return Failed(failure.error.model_copy(update={"message": message}), status.result, handled=True)
    return Failed(failure.error, status.result, handled=True, recovered=_recovers(status.result))


def _recovers(result: Any) -> bool:
    return isinstance(result, dict) and result.get("recover") is True


def pathflow(w: Walker, value: PathFlow, path: str, st: StepState, frame: Frame, again: bool) -> Status:
    # A child run's attempt is counted first: one that cannot start is a failed attempt too.
    launch = w.ctx.child_flows and (st.attempts == st.base_attempt or again)
    if launch:
        st.attempts += 1
    flow = w.ctx.library.flows.get(value.path)
    if flow is None:
        raise StepFailure(ErrorInfo(name="FlowNotFound", message=f"flow '{value.path}' is not available", step_id=path))
    depth = frame.depth + 1
    if depth > w.ctx.max_depth:
        raise StepFailure(ErrorInfo(
            name="FlowDepthExceeded",
            message=f"flow '{value.path}' would run {depth} inner flows deep (the limit is {w.ctx.max_depth}): "
                    "does it call itself?",
            step_id=path,
        ))
    if st.input is None:
        args = w.args(value.input_transforms, frame, path)
        try:
            st.input = validate_inputs(flow.schema_, args)
        except InputError as exc:
            raise StepFailure(ErrorInfo(name="InputError", message=f"inputs of flow '{value.path}': {exc}", step_id=path)) from None
    # The flow step's timeout and those of the containers around it bound every step of the inner flow.
    st.timeout_s = tighter(frame.timeout_s, st.timeout_s)
    if w.ctx.child_flows:
        if launch:
            w.actions.append(RunFlow(path=path, attempt=st.attempts, step_id=path.rsplit("/", 1)[-1],
                                     flow_path=value.path, args=st.input, depth=depth, timeout_s=st.timeout_s))
        return WAITING
    inner = Frame(flow_input=st.input, results={}, previous_result=st.input, depth=depth,
                  timeout_s=st.timeout_s, failure_module=flow.value.failure_module, base_attempt=frame.base_attempt)
    status = run_body(w, flow.value.modules, path, inner)
    if isinstance(status, Stopped):
        # Windmill: an early stop inside an inner flow ends that flow only.
        return Done(status.result)
    return status
