"""Approvals: a step with `suspend` waits for its resume events after it ran.

Windmill (worker_flow.rs needs_resume, push_next_flow_job): only a suspend
with `required_events` > 0 waits, and only when a module follows it in its
(sub-)flow, since the wait happens as the next module is pushed: a suspend
(like a `sleep`) on a flow's last module is not waited for; only the step
right after it sees `resume`, `resumes` and `approvers`; a disapproval fails
that next module with SuspendedDisapproved "Disapproved by <approver>", a
timeout (1800 s when none is given) with SuspendedTimedOut, so its
continue_on_error applies (its retries would be refused again: it is not
run again); `continue_on_disapprove_timeout` goes on instead, with that error
as the last resume.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..model.flow import FlowModule
from ..model.run import ErrorInfo, StepState
from .evaluate import NO_APPROVAL
from .events import Disapproved, Resumed
from .outcomes import WAITING, Waiting
from .paths import module_at
from .scope import error_value, failed

if TYPE_CHECKING:
    from .walker import Walker

DEFAULT_TIMEOUT_S = 30 * 60


def required(module: FlowModule) -> int:
    return (module.suspend.required_events or 0) if module.suspend else 0


def _timeout(module: FlowModule) -> float:
    assert module.suspend is not None
    return float(module.suspend.timeout or DEFAULT_TIMEOUT_S)


def _open(w: Walker) -> tuple[FlowModule, StepState] | None:
    """The suspended step, while it still takes resume events."""
    path = w.state.suspended_step or ""
    st = w.own(path)
    if st is None or st.awaiting_since is None or st.resolved or st.disapprover is not None:
        return None
    module = module_at(w.ctx.flow, path, w.ctx.library)
    if module is None or required(module) == 0 or w.now >= st.awaiting_since + _timeout(module):
        return None  # too late: the walk decides what a timed-out approval means
    return module, st


def resume(w: Walker, event: Resumed) -> None:
    found = _open(w)
    if found is not None:
        _, st = found
        st.resumes = [*(st.resumes or []), event.payload]
        st.approvers = [*(st.approvers or []), event.approver]


def disapprove(w: Walker, event: Disapproved) -> None:
    found = _open(w)
    if found is not None:
        _, st = found
        st.disapprover = event.approver
        st.approvers = [*(st.approvers or []), event.approver]


def wait(w: Walker, module: FlowModule, path: str, st: StepState) -> Waiting | None:
    """WAITING while approvals are missing; None to go on (a refusal is left in `st.refused`)."""
    need = required(module)
    if need == 0 or st.resolved:
        return None
    assert module.suspend is not None
    if st.awaiting_since is None:
        st.awaiting_since = st.finished_at or w.now
    resumes = st.resumes or []
    if st.disapprover is None and len(resumes) >= need:
        st.resolved = True
        return None
    deadline = st.awaiting_since + _timeout(module)
    if st.disapprover is None and w.now < deadline:
        w.wake(deadline)
        w.state.suspended_step = path
        return WAITING
    if st.disapprover is not None:
        error = ErrorInfo(name="SuspendedDisapproved", message=f"Disapproved by {st.disapprover}", step_id=path)
    else:
        error = ErrorInfo(name="SuspendedTimedOut", message="Timed out waiting to be resumed", step_id=path)
    st.resolved = True
    if module.suspend.continue_on_disapprove_timeout:
        st.resumes = [*resumes, error_value(error)]
    else:
        st.refused = error
    return None


def refuse(w: Walker, st: StepState, path: str, refused: ErrorInfo) -> None:
    """The module after a refused suspension fails with the refusal, without running."""
    w.mark_failed(st, failed(refused.model_copy(update={"step_id": path})))


def seen_by_next(module: FlowModule, st: StepState) -> dict[str, Any]:
    """What `resume`, `resumes` and `approvers` are for the step after `module`."""
    if required(module) == 0 or not st.resolved:
        return dict(NO_APPROVAL)
    resumes = st.resumes or []
    return {"resume": resumes[-1] if resumes else None, "resumes": resumes, "approvers": st.approvers or []}
