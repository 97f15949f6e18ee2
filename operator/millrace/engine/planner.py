"""The planner: (flow, run state, event) -> (new run state, actions).

Pure: no clock, no files, no network. Time arrives in the event, scripts
and sub-flows in the Library, variables and resources as mappings. Each
call applies the event, then walks the flow from the top. Every decision
taken on the way (a loop's items, the branch chosen, an early stop) is
memoised in the state, so walking again gives the same answer and a
restarted shell can resume from the saved state alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from ..model.flow import (
    BranchAll,
    BranchOne,
    FlowModule,
    ForloopFlow,
    Identity,
    OpenFlow,
    PathFlow,
    PathScript,
    RawScript,
    WhileloopFlow,
)
from ..model.run import ErrorInfo, RunStatus, StepState
from . import retry as retry_policy
from .actions import Action, CancelStep, RunFlow, RunStep
from .evaluate import Evaluator, Frame, StepFailure
from .events import CancelRequested, Event, Resumed, Start, StepFinished, Tick
from .inputs import InputError, validate_inputs
from ..runtime.languages import runtime_language
from .library import Library
from .paths import FAILURE_MODULE_PATH, module_at



@dataclass
class PlanContext:
    """Everything the planner may consult besides the state and the event."""

    flow_name: str
    flow: OpenFlow
    evaluator: Evaluator
    library: Library = field(default_factory=Library)
    max_while_iterations: int = 1000
    # Run inner flows as runs of their own (RunFlow actions) rather than inside this run.
    child_flows: bool = False


@dataclass
class Plan:
    state: RunStatus
    actions: list[Action]
    wake_at: float | None = None


# --- walk results -----------------------------------------------------------


@dataclass(frozen=True)
class Waiting:
    pass


@dataclass(frozen=True)
class Done:
    result: Any
    skipped: bool = False


@dataclass(frozen=True)
class Stopped:
    """An early stop: ends the enclosing loop, or the flow."""

    result: Any
    skip: bool = False


@dataclass(frozen=True)
class Failed:
    error: ErrorInfo


Status = Waiting | Done | Stopped | Failed
WAITING = Waiting()


def plan(ctx: PlanContext, state: RunStatus, event: Event) -> Plan:
    """Apply one event and decide what happens next. `state` is left as it was."""
    # Copy on write: the new state shares every StepState the walk does not change.
    own = state.model_copy(update={"steps": dict(state.steps)})
    walker = _Walker(ctx, own, event.now)
    return walker.run(event)


def _runs_outside(st: StepState, ctx: PlanContext) -> bool:
    """A step whose work happens in a process (or child run) of its own, with an attempt to record."""
    return st.runs_script or (ctx.child_flows and st.type == "flow" and st.attempts > 0)


def _join(prefix: str, part: str | int) -> str:
    return f"{prefix}/{part}" if prefix else str(part)


def _error_value(error: ErrorInfo) -> dict[str, Any]:
    """How an error looks to expressions and in skip_failures results."""
    return {"error": error.model_dump(exclude_none=True)}


class _Walker:
    def __init__(self, ctx: PlanContext, state: RunStatus, now: float) -> None:
        self.ctx = ctx
        self.state = state
        self.now = now
        self.actions: list[Action] = []
        self.wake_at: float | None = None
        # Per loop path: the body's results of the latest finished iteration of this walk.
        self._carried: dict[str, dict[str, Any]] = {}
        self._owned: set[str] = set()

    def _own(self, path: str) -> StepState | None:
        """The step's state, copied once per plan before the walk may change it."""
        st = self.state.steps.get(path)
        if st is not None and path not in self._owned:
            st = self.state.steps[path] = st.model_copy()
            self._owned.add(path)
        return st

    # --- entry ---------------------------------------------------------------

    def run(self, event: Event) -> Plan:
        if self.state.terminal:
            return Plan(self.state, [])
        if isinstance(event, Start):
            if not self._start(event):
                return Plan(self.state, [])
        elif isinstance(event, StepFinished):
            self._record(event)
        elif isinstance(event, Resumed):
            self._resume(event)
        elif isinstance(event, CancelRequested):
            message = f"{event.reason} (by {event.by})"
            self._finish("Cancelled", error=ErrorInfo(name="Cancelled", message=message, step=self.state.suspended_step))
            return Plan(self.state, self.actions)
        elif not isinstance(event, Tick):
            raise TypeError(f"unknown event {event!r}")
        self._walk_flow()
        return Plan(self.state, self.actions, self.wake_at)

    def _start(self, event: Start) -> bool:
        self.state.phase = "Running"
        self.state.started_at = self.now
        try:
            self.state.args = validate_inputs(self.ctx.flow.schema_, event.args)
        except InputError as exc:
            self._finish("Failed", error=ErrorInfo(name="InputError", message=str(exc), step=None))
            return False
        return True

    def _record(self, event: StepFinished) -> None:
        st = self._own(event.path)
        # Replays of an attempt already recorded change nothing.
        if st is None or st.phase != "Running" or st.attempts != event.attempt or st.not_before is not None:
            return
        outcome = event.outcome
        st.finished_at = self.now
        if outcome.ok:
            st.phase = "Succeeded"
            st.result = outcome.result
            st.error = None
            return
        err = outcome.error
        st.error = ErrorInfo(
            name=err.name if err else "Error",
            message=err.message if err else "step failed",
            stack=err.stack if err else "",
            step=event.path,
        )
        st.phase = "Failed"

    def _resume(self, event: Resumed) -> None:
        path = self.state.suspended_step or ""
        st = self._own(path)
        if st is None or st.awaiting_since is None:
            return
        module = module_at(self.ctx.flow, path, self.ctx.library)
        timeout = module.suspend.timeout if module and module.suspend else None
        if timeout and self.now >= st.awaiting_since + timeout:
            return  # too late: the walk decides what a timed-out approval means
        st.resumes = [*(st.resumes or []), event.payload]
        st.approvers = [*(st.approvers or []), event.approver]

    def _walk_flow(self) -> None:
        frame = Frame(flow_input=self.state.args, results={}, previous_result=None)
        self.state.suspended_step = None
        status = self._sequence(self.ctx.flow.value.modules, "", frame)
        self._early_return(frame)
        if isinstance(status, Waiting):
            running = any(st.phase == "Running" and _runs_outside(st, self.ctx) for st in self.state.steps.values())
            self.state.phase = "Suspended" if self.state.suspended_step and not running else "Running"
            return
        if isinstance(status, Failed):
            self._handle_failure(status.error, frame)
            return
        if isinstance(status, Stopped):
            self.state.stopped_early = True
            self.state.skipped = status.skip
        self._finish("Succeeded", result=status.result)

    def _early_return(self, frame: Frame) -> None:
        """Windmill's `early_return`: hand a step's result to the caller while the flow goes on."""
        step_id = self.ctx.flow.value.early_return
        if step_id and not self.state.early_returned and step_id in frame.results:
            self.state.early_returned = True
            self.state.early_result = frame.results[step_id]

    def _handle_failure(self, error: ErrorInfo, frame: Frame) -> None:
        module = self.ctx.flow.value.failure_module
        if module is None:
            self._finish("Failed", error=error)
            return
        failed = self.state.steps.get(error.step or "")
        extra = {
            "error": {
                **error.model_dump(exclude_none=True),
                "step_id": error.step,
                "started_at": failed.started_at if failed else None,
            }
        }
        handler_frame = Frame(frame.flow_input, dict(frame.results), frame.previous_result, extra)
        status = self._module(module, FAILURE_MODULE_PATH, handler_frame)
        if isinstance(status, Waiting):
            return
        if isinstance(status, Failed):
            combined = error.model_copy(
                update={"message": f"{error.message} (and the failure module failed: {status.error.message})"}
            )
            self._finish("Failed", error=combined)
            return
        self._finish("Failed", result=status.result, error=error)

    def _finish(self, phase: str, result: Any = None, error: ErrorInfo | None = None) -> None:
        self.state.phase = phase  # type: ignore[assignment]
        self.state.result = result
        self.state.error = error
        self.state.finished_at = self.now
        self.wake_at = None
        running = [p for p, st in self.state.steps.items() if st.phase == "Running" and _runs_outside(st, self.ctx)]
        for path in running:
            st = self._own(path)
            assert st is not None
            if st.not_before is None:
                self.actions.append(CancelStep(path=path, attempt=st.attempts))
            st.phase = "Failed"
            st.error = ErrorInfo(name="Cancelled", message="the run ended before this step finished", step=path)
            st.finished_at = self.now

    # --- sequences -------------------------------------------------------------

    def _sequence(self, modules: list[FlowModule], prefix: str, frame: Frame) -> Status:
        last = frame.previous_result
        for module in modules:
            frame.previous_result = last
            path = _join(prefix, module.id)
            status = self._module(module, path, frame)
            if not isinstance(status, Done):
                return status
            if isinstance(module.value, (ForloopFlow, WhileloopFlow)):
                frame.results.update(self._last_iteration(module.value.modules, path))
            frame.results[module.id] = status.result
            if not status.skipped:
                last = status.result
        return Done(last)

    # --- one module ------------------------------------------------------------

    def _module(self, module: FlowModule, path: str, frame: Frame) -> Status:
        st = self._own(path)
        if st is None:
            st = self.state.steps[path] = StepState(type=module.value.type, started_at=self.now)
            self._owned.add(path)
            try:
                if module.skip_if and self._truthy(module.skip_if.expr, frame, path, "skip_if.expr"):
                    st.phase = "Skipped"
                    st.finished_at = self.now
                    return Done(None, skipped=True)
                if module.mock and module.mock.enabled:
                    st.phase = "Succeeded"
                    st.result = module.mock.return_value
                    st.finished_at = self.now
                else:
                    st.phase = "Running"
            except StepFailure as failure:
                return self._fail(st, failure.error)
        if st.phase == "Skipped":
            return Done(None, skipped=True)
        if st.phase == "Running":
            status = self._advance(module, path, st, frame)
            if isinstance(status, Waiting):
                return status
            if isinstance(status, Failed):
                return self._fail(st, status.error)
            if isinstance(status, Stopped):
                # A break inside a branch ends the flow, not just this container.
                st.stopped = True
                st.skip_stopped = status.skip
            st.phase = "Succeeded"
            st.result = status.result
            st.finished_at = self.now
        if st.phase == "Failed" and not st.final and isinstance(module.value, (RawScript, PathScript)):
            try:
                if self._retry(module, path, st, frame):
                    return self._advance(module, path, st, frame)
            except StepFailure as failure:
                st.error = failure.error
            st.final = True
        if st.phase == "Failed":
            return self._failed_module(module, st)
        return self._after_success(module, path, st, frame)

    def _fail(self, st: StepState, error: ErrorInfo) -> Failed:
        # Only a failed attempt of the step's own code is retried.
        st.final = True
        st.phase = "Failed"
        st.error = error
        st.finished_at = self.now
        return Failed(error)

    def _failed_module(self, module: FlowModule, st: StepState) -> Status:
        assert st.error is not None
        if module.continue_on_error:
            return Done(_error_value(st.error))
        return Failed(st.error)

    def _after_success(self, module: FlowModule, path: str, st: StepState, frame: Frame) -> Status:
        stop = module.stop_after_if
        if isinstance(module.value, WhileloopFlow):
            stop = None  # on a while loop it is the loop's own exit test
        if isinstance(module.value, ForloopFlow) and module.stop_after_all_iters_if:
            stop = module.stop_after_all_iters_if
        if stop is not None and st.stopped is None:
            try:
                st.stopped = self._truthy(stop.expr, frame, path, "stop_after_if.expr", {"result": st.result})
            except StepFailure as failure:
                return self._fail(st, failure.error)
            st.skip_stopped = bool(stop.skip_if_stopped)
            if st.stopped and stop.error_message:
                return self._fail(st, ErrorInfo(name="EarlyStop", message=stop.error_message, step=path))
        if st.stopped:
            return Stopped(st.result, skip=st.skip_stopped)
        try:
            waiting = self._sleep(module, path, st, frame) or self._suspend(module, path, st, frame)
        except StepFailure as failure:
            return self._fail(st, failure.error)
        if waiting is not None:
            return waiting
        return Done(st.result)

    def _sleep(self, module: FlowModule, path: str, st: StepState, frame: Frame) -> Status | None:
        if module.sleep is None:
            return None
        if st.sleep_until is None:
            seconds = self._number(module.sleep, frame, path, "sleep") or 0.0
            st.sleep_until = (st.finished_at or self.now) + seconds
        if self.now < st.sleep_until:
            self._wake(st.sleep_until)
            return WAITING
        return None

    def _suspend(self, module: FlowModule, path: str, st: StepState, frame: Frame) -> Status | None:
        """After a step with `suspend`, wait for its approvals; later steps see them."""
        suspend = module.suspend
        if suspend is None:
            return None
        if st.awaiting_since is None:
            st.awaiting_since = st.finished_at or self.now
        resumes = st.resumes or []
        required = suspend.required_events or 1
        if len(resumes) < required:
            deadline = st.awaiting_since + suspend.timeout if suspend.timeout else None
            if deadline is None or self.now < deadline:
                if deadline is not None:
                    self._wake(deadline)
                self.state.suspended_step = path
                return WAITING
            if not suspend.continue_on_disapprove_timeout:
                raise StepFailure(ErrorInfo(
                    name="ApprovalTimeout",
                    message=f"no approval within {suspend.timeout} s ({len(resumes)} of {required} received)",
                    step=path,
                ))
        frame.extra = {
            **frame.extra,
            "resume": resumes[-1] if resumes else None,
            "resumes": resumes,
            "approvers": st.approvers or [],
        }
        return None

    def _advance(self, module: FlowModule, path: str, st: StepState, frame: Frame) -> Status:
        value = module.value
        try:
            if isinstance(value, (RawScript, PathScript)):
                return self._script(module, path, st, frame)
            if isinstance(value, Identity):
                return Done(frame.previous_result)
            if isinstance(value, ForloopFlow):
                return self._forloop(module, value, path, st, frame)
            if isinstance(value, WhileloopFlow):
                return self._whileloop(module, value, path, st, frame)
            if isinstance(value, BranchOne):
                return self._branchone(value, path, st, frame)
            if isinstance(value, BranchAll):
                return self._branchall(value, path, st, frame)
            if isinstance(value, PathFlow):
                return self._subflow(value, path, st, frame)
        except StepFailure as failure:
            return Failed(failure.error)
        return Failed(ErrorInfo(name="UnsupportedModule", message=f"module type '{value.type}' is not supported", step=path))

    # --- scripts ---------------------------------------------------------------

    def _script(self, module: FlowModule, path: str, st: StepState, frame: Frame) -> Status:
        if st.attempts == 0:
            self._launch(module, path, st, frame)
            return WAITING
        if st.not_before is not None:
            if self.now < st.not_before:
                self._wake(st.not_before)
                return WAITING
            st.not_before = None
            self._launch(module, path, st, frame)
        return WAITING

    def _launch(self, module: FlowModule, path: str, st: StepState, frame: Frame) -> None:
        language, code = self._code(module, path)
        args = self._args(module.value.input_transforms, frame, path)  # type: ignore[union-attr]
        timeout = self._number(module.timeout, frame, path, "timeout")
        st.attempts += 1
        self.actions.append(
            RunStep(
                path=path,
                attempt=st.attempts,
                step_id=module.id,
                language=language,
                code=code,
                args=args,
                timeout_s=timeout,
            )
        )

    def _code(self, module: FlowModule, path: str) -> tuple[Any, str]:
        value = module.value
        if isinstance(value, RawScript):
            language, content = value.language, value.content
        else:
            assert isinstance(value, PathScript)
            script = self.ctx.library.scripts.get(value.path)
            if script is None:
                raise StepFailure(ErrorInfo(name="ScriptNotFound", message=f"script '{value.path}' is not available", step=path))
            language, content = script.language, script.content
        runtime = runtime_language(language)
        if runtime is None:
            raise StepFailure(ErrorInfo(name="UnsupportedLanguage", message=f"language '{language}' is not supported", step=path))
        if content is None:
            raise StepFailure(ErrorInfo(name="MissingBody", message="the script body is not available", step=path))
        return runtime, content

    def _retry(self, module: FlowModule, path: str, st: StepState, frame: Frame) -> bool:
        """After a failed attempt: schedule another one if the policy allows."""
        assert st.error is not None
        delay = retry_policy.next_delay(module.retry, st.attempts, seed=path)
        if delay is None:
            return False
        if module.retry and module.retry.retry_if:
            error = _error_value(st.error)["error"]
            if not self._truthy(module.retry.retry_if.expr, frame, path, "retry.retry_if.expr", {"result": error, "error": error}):
                return False
        st.phase = "Running"
        st.not_before = self.now + delay
        st.finished_at = None
        return True

    # --- loops -----------------------------------------------------------------

    def _forloop(self, module: FlowModule, loop: ForloopFlow, path: str, st: StepState, frame: Frame) -> Status:
        if st.items is None:
            items = self._transform(loop.iterator, frame, path, "iterator")
            if not isinstance(items, list):
                raise StepFailure(ErrorInfo(
                    name="IteratorError",
                    message=f"the iterator must evaluate to an array, got {type(items).__name__}",
                    step=path,
                ))
            st.items = items
            st.parallelism = self._parallelism(loop, frame, path)
        width = st.parallelism if loop.parallel else 1
        return self._iterate(loop.modules, path, st, frame, width or len(st.items) or 1, loop.skip_failures)

    def _parallelism(self, loop: ForloopFlow, frame: Frame, path: str) -> int | None:
        if not loop.parallel or loop.parallelism is None:
            return None
        value = self._number(loop.parallelism, frame, path, "parallelism")
        return max(1, int(value)) if value else None

    def _iterate(
        self, body: list[FlowModule], path: str, st: StepState, frame: Frame, width: int, skip_failures: bool
    ) -> Status:
        """Run up to `width` iterations at once; results keep the items' order."""
        assert st.items is not None
        total = len(st.items)
        results: dict[int, Any] = {}
        active = 0
        index = 0
        while index < total:
            if index >= st.started:
                if active >= width:
                    break
                st.started += 1
            so_far = [results[i] for i in sorted(results)]
            status = self._iteration(body, path, index, st.items[index], frame, so_far)
            if isinstance(status, Waiting):
                active += 1
            elif isinstance(status, Failed):
                if not skip_failures:
                    return status
                results[index] = _error_value(status.error)
            elif isinstance(status, Stopped):
                results[index] = status.result
                return Done([results[i] for i in sorted(results)])
            else:
                results[index] = status.result
            index += 1
        if active or len(results) < total:
            return WAITING
        return Done([results[i] for i in range(total)])

    def _iteration(self, body: list[FlowModule], path: str, index: int, value: Any, frame: Frame,
                   so_far: list[Any]) -> Status:
        """One iteration sees the outer results, the loop's results so far under the
        loop's id and, as Windmill does, the body's results of the iteration before it;
        after the loop, the last one's stay visible."""
        carried = self._carried.get(path, {})
        loop_id = path.rsplit("/", 1)[-1]
        inner = Frame(
            flow_input={**frame.flow_input, "iter": {"index": index, "value": value}},
            results={**frame.results, **carried, loop_id: so_far},
            previous_result=frame.previous_result,
            extra=frame.extra,
        )
        status = self._sequence(body, _join(path, index), inner)
        if isinstance(status, (Done, Stopped)):
            self._carried[path] = {k: v for k, v in inner.results.items() if k not in frame.results and k != loop_id}
        return status

    def _whileloop(self, module: FlowModule, loop: WhileloopFlow, path: str, st: StepState, frame: Frame) -> Status:
        results: list[Any] = []
        index = 0
        while True:
            if index >= st.started:
                if index >= self.ctx.max_while_iterations:
                    raise StepFailure(ErrorInfo(
                        name="LoopLimit",
                        message=f"the while loop did not stop after {self.ctx.max_while_iterations} iterations",
                        step=path,
                    ))
                st.started += 1
            status = self._iteration(loop.modules, path, index, index, frame, list(results))
            if isinstance(status, Waiting):
                return status
            if isinstance(status, Failed):
                if not loop.skip_failures:
                    return status
                results.append(_error_value(status.error))
            else:
                results.append(status.result)
                if isinstance(status, Stopped) or self._loop_exit(module, path, status.result, frame):
                    return Done(results)
            index += 1

    def _loop_exit(self, module: FlowModule, path: str, result: Any, frame: Frame) -> bool:
        """A while loop's own stop_after_if is tested after every iteration."""
        if module.stop_after_if is None:
            return False
        return self._truthy(module.stop_after_if.expr, frame, path, "stop_after_if.expr", {"result": result})

    # --- branches --------------------------------------------------------------

    def _branchone(self, value: BranchOne, path: str, st: StepState, frame: Frame) -> Status:
        if st.branch is None:
            st.branch = -1
            for i, branch in enumerate(value.branches):
                if self._truthy(branch.expr, frame, path, f"branches[{i}].expr"):
                    st.branch = i
                    break
        modules = value.default if st.branch < 0 else value.branches[st.branch].modules
        prefix = _join(path, "default" if st.branch < 0 else st.branch)
        saved = frame.previous_result
        status = self._sequence(modules, prefix, frame)
        frame.previous_result = saved
        return status

    def _branchall(self, value: BranchAll, path: str, st: StepState, frame: Frame) -> Status:
        results: list[Any] = []
        inner_results: dict[str, Any] = {}
        waiting = False
        for i, branch in enumerate(value.branches):
            inner = Frame(frame.flow_input, dict(frame.results), frame.previous_result, frame.extra)
            status = self._sequence(branch.modules, _join(path, i), inner)
            if isinstance(status, Waiting):
                waiting = True
                if not value.parallel:
                    return status
                continue
            if isinstance(status, Failed):
                if not branch.skip_failure:
                    return status
                results.append(_error_value(status.error))
            elif isinstance(status, Stopped):
                return status
            else:
                results.append(status.result)
            inner_results.update({k: v for k, v in inner.results.items() if k not in frame.results})
        if waiting:
            return WAITING
        frame.results.update(inner_results)
        return Done(results)

    # --- sub-flows -------------------------------------------------------------

    def _subflow(self, value: PathFlow, path: str, st: StepState, frame: Frame) -> Status:
        flow = self.ctx.library.flows.get(value.path)
        if flow is None:
            raise StepFailure(ErrorInfo(name="FlowNotFound", message=f"flow '{value.path}' is not available", step=path))
        if st.input is None:
            args = self._args(value.input_transforms, frame, path)
            try:
                st.input = validate_inputs(flow.schema_, args)
            except InputError as exc:
                raise StepFailure(ErrorInfo(name="InputError", message=f"inputs of flow '{value.path}': {exc}", step=path)) from None
        if self.ctx.child_flows:
            if st.attempts == 0:
                st.attempts = 1
                self.actions.append(RunFlow(path=path, attempt=1, step_id=path.rsplit("/", 1)[-1],
                                            flow_path=value.path, args=st.input))
            return WAITING
        inner = Frame(flow_input=st.input, results={}, previous_result=None)
        status = self._sequence(flow.value.modules, path, inner)
        if isinstance(status, Stopped):
            return Done(status.result)
        return status

    # --- expressions -------------------------------------------------------------

    def _args(self, transforms: Mapping[str, Any], frame: Frame, path: str) -> dict[str, Any]:
        args: dict[str, Any] = {}
        for name, transform in transforms.items():
            args[name] = self._transform(transform, frame, path, f"input_transforms.{name}", params=args)
        return args

    def _transform(self, transform: Any, frame: Frame, path: str, field: str, params: dict[str, Any] | None = None) -> Any:
        return self.ctx.evaluator.transform(transform, frame, path, field, params)

    def _truthy(self, expr: str, frame: Frame, path: str, field: str, extra: dict[str, Any] | None = None) -> bool:
        return self.ctx.evaluator.truthy(expr, frame, path, field, extra)

    def _number(self, value: Any, frame: Frame, path: str, field: str) -> float | None:
        if value is None or isinstance(value, (int, float)):
            return value
        result = self._transform(value, frame, path, field)
        if result is None:
            return None
        if not isinstance(result, (int, float)) or isinstance(result, bool):
            raise StepFailure(ErrorInfo(name="InputTransformError", message=f"'{field}' must be a number, got {result!r}", step=path))
        return float(result)

    def _last_iteration(self, body: list[FlowModule], path: str) -> dict[str, Any]:
        """The body's results in the loop's last iteration that has any."""
        st = self.state.steps[path]
        for index in range(st.started - 1, -1, -1):
            found = {m.id: self.state.steps[p].result for m in body
                     if (p := _join(_join(path, index), m.id)) in self.state.steps and self.state.steps[p].phase == "Succeeded"}
            if found:
                return found
        return {}

    def _wake(self, at: float) -> None:
        self.wake_at = at if self.wake_at is None else min(self.wake_at, at)
