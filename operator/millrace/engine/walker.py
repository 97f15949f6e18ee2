"""One walk of a flow: events applied, then every module advanced as far as it can go.

A module's lifecycle is a few explicit transitions on its StepState:

    (none|Pending) --begin--> Skipped | Succeeded (mock) | Running | Failed
    Running --its work ends--> Succeeded | Failed
    Failed --retry allowed--> Running (after the delay, from the start)
    Failed --final--> a result (continue_on_error) or a failure for the caller
    Succeeded --after--> early stop | sleep | approval | done

Containers (loops, branches, inner flows) live in their own modules and come
back here for each inner module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from ..model.flow import (
    BranchAll,
    BranchOne,
    FlowModule,
    ForloopFlow,
    Identity,
    PathFlow,
    PathScript,
    RawScript,
    StopAfterIf,
    WhileloopFlow,
)
from ..model.run import ErrorInfo, RunStatus, StepState
from . import approvals, branches, loops, subflows
from . import retry as retry_policy
from .actions import Action, CancelStep, RunStep
from .context import Plan, PlanContext
from .library import Library
from .evaluate import Frame, StepFailure
from .events import CancelRequested, Disapproved, Event, Resumed, Start, StepFinished, Tick
from .inputs import InputError, validate_inputs
from .library import imported_scripts
from ..runtime.imports import module_file
from ..runtime.languages import Language, runtime_language
from ..runtime.program import step_language
from .outcomes import WAITING, Done, Failed, Status, Stopped, Waiting
from .paths import PREPROCESSOR_PATH
from .scope import error_value, failed, join, published, tighter

# Containers whose early-stop rule is stop_after_all_iters_if (their stop_after_if, if
# any, is tested inside: per iteration for loops; never for branch-all, as in Windmill).
_ITERATING = (ForloopFlow, WhileloopFlow, BranchAll)

# A trigger step that found nothing new ends the run early as a success, marked skipped
# (Windmill's flow editor gives trigger scripts this stop_after_if).
TRIGGER_STOP = StopAfterIf(expr="result == null || (Array.isArray(result) && result.length == 0)", skip_if_stopped=True)

# What a container decides once per run of its body; cleared when it is run again.
_CONTAINER_DECISIONS = ("items", "parallelism", "input", "branch", "stopped", "result", "error", "timeout_s")


class Walker:
    def __init__(self, ctx: PlanContext, state: RunStatus, now: float) -> None:
        self.ctx = ctx
        self.state = state
        self.now = now
        self.actions: list[Action] = []
        self.wake_at: float | None = None
        self.compacted: dict[str, StepState] = {}
        self._owned: set[str] = set()

    def own(self, path: str) -> StepState | None:
        """The step's state, copied once per plan before the walk may change it."""
        st = self.state.steps.get(path)
        if st is not None and path not in self._owned:
            st = self.state.steps[path] = st.model_copy()
            self._owned.add(path)
        return st

    def launches(self, st: StepState) -> bool:
        """A step whose work happens in a process (or child run) of its own."""
        return st.runs_script or (self.ctx.child_flows and st.type == "flow")

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
            approvals.resume(self, event)
        elif isinstance(event, Disapproved):
            approvals.disapprove(self, event)
        elif isinstance(event, CancelRequested):
            message = f"{event.reason} (by {event.by})"
            self._finish("Cancelled", error=ErrorInfo(name="Cancelled", message=message, step_id=self.state.suspended_step))
            return Plan(self.state, self.actions)
        elif not isinstance(event, Tick):
            raise TypeError(f"unknown event {event!r}")
        self._walk_flow()
        return Plan(self.state, self.actions, self.wake_at, self.compacted)

    def _start(self, event: Start) -> bool:
        self.state.phase = "Running"
        self.state.started_at = self.now
        if event.preprocess and self.ctx.flow.value.preprocessor_module is not None:
            # The trigger's event, for the preprocessor; its result is checked against the schema.
            self.state.args = dict(event.args)
            self.state.preprocessing = True
            return True
        try:
            self.state.args = validate_inputs(self.ctx.flow.schema_, event.args)
        except InputError as exc:
            self._finish("Failed", error=ErrorInfo(name="InputError", message=str(exc)))
            return False
        return True

    def _record(self, event: StepFinished) -> None:
        st = self.own(event.path)
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
            step_id=event.path,
            exit_code=err.exit_code if err else None,
        )
        st.result = error_value(st.error)
        st.phase = "Failed"

    def _walk_flow(self) -> None:
        if self.state.preprocessing and not self._preprocess():
            return
        flow = self.ctx.flow.value
        frame = Frame(flow_input=self.state.args, results={}, previous_result=self.state.args,
                      depth=self.ctx.depth, timeout_s=self.ctx.timeout_s, failure_module=flow.failure_module)
        self.state.suspended_step = None
        status = subflows.run_body(self, flow.modules, "", frame)
        self._early_return(frame)
        if isinstance(status, Waiting):
            running = any(st.phase == "Running" and self.launches(st) and st.attempts > st.base_attempt
                          for st in self.state.steps.values())
            self.state.phase = "Suspended" if self.state.suspended_step and not running else "Running"
            return
        if isinstance(status, Failed):
            if status.recovered:
                # Windmill: a failure module returning `recover: true` turns the run into a success.
                self._finish("Succeeded", result=status.result)
            else:
                self._finish("Failed", result=status.result, error=status.error)
            return
        if isinstance(status, Stopped):
            self.state.stopped_early = True
            self.state.skipped = status.skip
        self._finish("Succeeded", result=status.result)

    def _preprocess(self) -> bool:
        """Run the preprocessor_module on the trigger's event; True once its result is the flow input.

        As in Windmill, it gets the trigger's arguments as they are (its input
        transforms are not evaluated) and its `preprocessor` function is called.
        """
        module = self.ctx.flow.value.preprocessor_module
        assert module is not None
        frame = Frame(flow_input=self.state.args, results={}, previous_result=self.state.args, depth=self.ctx.depth,
                      timeout_s=self.ctx.timeout_s)
        status = self.module(module, PREPROCESSOR_PATH, frame)
        if isinstance(status, Waiting):
            self.state.phase = "Running"
            return False
        if isinstance(status, Failed):
            self._finish("Failed", result=status.result, error=status.error)
            return False
        result = status.result
        try:
            if not isinstance(result, dict):
                raise InputError(None, f"the preprocessor must return an object of flow inputs, got {type(result).__name__}")
            self.state.args = validate_inputs(self.ctx.flow.schema_, result)
        except InputError as exc:
            self._finish("Failed", error=ErrorInfo(name="InputError", message=f"preprocessor result: {exc}",
                                                   step_id=PREPROCESSOR_PATH))
            return False
        self.state.preprocessing = False
        return True

    def _early_return(self, frame: Frame) -> None:
        """Windmill's `early_return`: hand a step's result to the caller while the flow goes on."""
        step_id = self.ctx.flow.value.early_return
        if step_id and not self.state.early_returned and step_id in frame.results:
            self.state.early_returned = True
            self.state.early_result = frame.results[step_id]

    def _finish(self, phase: str, result: Any = None, error: ErrorInfo | None = None) -> None:
        self.state.phase = phase  # type: ignore[assignment]
        self.state.result = result
        self.state.error = error
        self.state.finished_at = self.now
        self.wake_at = None
        self.cancel_running("", "the run ended before this step finished")

    def cancel_running(self, prefix: str, message: str) -> None:
        """Stop every attempt in flight under `prefix` (the whole run for "")."""
        for path, st in list(self.state.steps.items()):
            if prefix and not path.startswith(prefix + "/"):
                continue
            if st.phase != "Running" or not self.launches(st) or st.attempts == st.base_attempt:
                continue
            own = self.own(path)
            assert own is not None
            if own.not_before is None:
                self.actions.append(CancelStep(path=path, attempt=own.attempts))
            own.phase = "Failed"
            own.error = ErrorInfo(name="Cancelled", message=message, step_id=path)
            own.finished_at = self.now

    # --- sequences -------------------------------------------------------------

    def sequence(self, modules: list[FlowModule], prefix: str, frame: Frame) -> Status:
        last = frame.previous_result
        approval = frame.approval
        refused = frame.refused
        for i, module in enumerate(modules):
            frame.previous_result = last
            frame.approval = approval
            frame.refused = refused
            path = join(prefix, module.id)
            # Windmill sleeps and waits for approvals as it pushes the next module of the same flow.
            status = self.module(module, path, frame, followed=i + 1 < len(modules))
            if not isinstance(status, Done):
                return status
            frame.results.update(published(module, path, self.state.steps))
            frame.results[module.id] = status.result
            last = status.result
            approval = approvals.seen_by_next(module, self.state.steps[path])
            refused = self.state.steps[path].refused
        return Done(last)

    # --- one module: the lifecycle ----------------------------------------------

    def module(self, module: FlowModule, path: str, frame: Frame, followed: bool = False) -> Status:
        """Advance one module; `followed`: another module comes after it in its (sub-)flow."""
        st = self.own(path)
        if st is None or st.phase == "Pending":
            st = self._begin(module, path, st, frame)
        if st.phase == "Skipped":
            return Done(st.result)
        if st.phase == "Running":
            status = self._running(module, path, st, frame)
            if isinstance(status, Waiting):
                return status
            if isinstance(status, Failed):
                return self._failed(module, path, st, frame, status)
            if isinstance(status, Stopped):
                # A stop inside a container ends the flow (or the loop around it), not just this container.
                st.stopped = True
                st.skip_stopped = status.skip
            st.phase = "Succeeded"
            st.result = status.result
            st.finished_at = self.now
        if st.phase == "Failed":
            if not st.final:
                assert st.error is not None
                return self._failed(module, path, st, frame, Failed(st.error, st.result))
            return self._final_failure(module, st)
        return self._after_success(module, path, st, frame, followed)

    def _begin(self, module: FlowModule, path: str, old: StepState | None, frame: Frame) -> StepState:
        base = old.attempts if old is not None else frame.base_attempt
        st = self.state.steps[path] = StepState(type=module.value.type, started_at=self.now, attempts=base, base_attempt=base)
        self._owned.add(path)
        if frame.refused is not None:
            approvals.refuse(self, st, path, frame.refused)
            return st
        try:
            if module.skip_if and self.test(module.skip_if.expr, frame, path, "skip_if.expr", frame.previous_result):
                # Windmill: a skipped step runs as an identity step.
                st.phase = "Skipped"
                st.result = frame.previous_result
                st.finished_at = self.now
            elif module.mock and module.mock.enabled:
                st.phase = "Succeeded"
                st.result = module.mock.return_value
                st.finished_at = self.now
            else:
                st.phase = "Running"
                if not self.launches(st):
                    st.attempts += 1
                if not st.runs_script:
                    # A container's timeout bounds every step it runs.
                    st.timeout_s = self.number(module.timeout, frame, path, "timeout")
        except StepFailure as failure:
            self.mark_failed(st, failed(failure.error))
        return st

    def _running(self, module: FlowModule, path: str, st: StepState, frame: Frame) -> Status:
        again = False
        if st.not_before is not None:
            if self.now < st.not_before:
                self.wake(st.not_before)
                return WAITING
            st.not_before = None
            again = True
            if not self.launches(st):
                st.attempts += 1
        try:
            return self._advance(module, path, st, frame, again)
        except StepFailure as failure:
            return failed(failure.error)

    def _advance(self, module: FlowModule, path: str, st: StepState, frame: Frame, again: bool) -> Status:
        value = module.value
        if isinstance(value, (RawScript, PathScript)):
            if st.attempts == st.base_attempt or again:
                self._launch(module, path, st, frame)
            return WAITING
        if isinstance(value, Identity):
            return Done(frame.previous_result)
        if isinstance(value, ForloopFlow):
            return loops.forloop(self, module, value, path, st, frame)
        if isinstance(value, WhileloopFlow):
            return loops.whileloop(self, module, value, path, st, frame)
        if isinstance(value, BranchOne):
            return branches.branchone(self, value, path, st, frame)
        if isinstance(value, BranchAll):
            return branches.branchall(self, value, path, st, frame)
        if isinstance(value, PathFlow):
            return subflows.pathflow(self, value, path, st, frame, again)
        return failed(ErrorInfo(name="UnsupportedModule", message=f"module type '{value.type}' is not supported", step_id=path))

    def mark_failed(self, st: StepState, failure: Failed) -> None:
        """Settle a module as failed: no retry any more."""
        st.phase = "Failed"
        st.final = True
        st.error = failure.error
        st.result = failure.result
        st.handled = failure.handled
        st.finished_at = self.now

    def _failed(self, module: FlowModule, path: str, st: StepState, frame: Frame, failure: Failed) -> Status:
        """A run of the module failed: run it again if its retry policy allows, else settle."""
        try:
            if self._retry(module, path, st, frame, failure.error):
                return self._running(module, path, st, frame)
        except StepFailure as refusal:
            failure = failed(refusal.error)
        self.mark_failed(st, failure)
        return self._final_failure(module, st)

    def _final_failure(self, module: FlowModule, st: StepState) -> Status:
        assert st.error is not None
        # An early stop with an error ends the flow: continue_on_error does not apply.
        if module.continue_on_error and not st.stopped:
            return Done(st.result)
        return Failed(st.error, st.result, handled=st.handled)

    def _retry(self, module: FlowModule, path: str, st: StepState, frame: Frame, error: ErrorInfo) -> bool:
        """Windmill retries every module (worker_flow.rs next_retry): a container runs again from its start."""
        policy = module.retry
        if policy is None:
            return False
        delay = retry_policy.next_delay(policy, max(1, st.attempts - st.base_attempt), seed=path)
        if delay is None:
            return False
        if policy.retry_if and not self.test(policy.retry_if.expr, frame, path, "retry.retry_if.expr", error_value(error)):
            return False
        if not st.runs_script:
            self._reset_container(path, st)
        st.phase = "Running"
        st.error = None
        st.finished_at = None
        st.not_before = self.now + delay
        return True

    def _reset_container(self, path: str, st: StepState) -> None:
        """Forget a container's decisions and its inner steps' states, keeping their attempt counts."""
        self.cancel_running(path, "the step around it is run again")
        for name in _CONTAINER_DECISIONS:
            setattr(st, name, None)
        st.started = 0
        st.skip_stopped = False
        st.handled = False
        deeper = 0
        for inner, old in list(self.state.steps.items()):
            if inner.startswith(path + "/"):
                deeper = max(deeper, loops.attempts_within(old))
                self.state.steps[inner] = StepState(phase="Pending", type=old.type, attempts=old.attempts,
                                                    base_attempt=old.attempts)
                self._owned.add(inner)
        st.loop = loops.restarted(st.loop, deeper)

    # --- after a module succeeded -------------------------------------------------

    def _after_success(self, module: FlowModule, path: str, st: StepState, frame: Frame, followed: bool) -> Status:
        stop = module.stop_after_all_iters_if if isinstance(module.value, _ITERATING) else module.stop_after_if
        if stop is None and self._is_trigger(module):
            stop = TRIGGER_STOP
        if stop is not None and st.stopped is None:
            try:
                st.stopped = self.test(stop.expr, frame, path, "stop_after_if.expr", st.result)
            except StepFailure as failure:
                self.mark_failed(st, failed(failure.error))
                return self._final_failure(module, st)
            st.skip_stopped = bool(stop.skip_if_stopped)
            if st.stopped and stop.error_message is not None:
                return self._stop_with_error(st, path, stop)
        if st.stopped:
            return Stopped(st.result, skip=st.skip_stopped)
        if not followed:
            return Done(st.result)
        try:
            waiting = self._sleep(module, path, st, frame) or approvals.wait(self, module, path, st)
        except StepFailure as failure:
            self.mark_failed(st, failed(failure.error))
            return self._final_failure(module, st)
        if waiting is not None:
            return waiting
        return Done(st.result)

    def _is_trigger(self, module: FlowModule) -> bool:
        """The flow's first step marked is_trigger: a watcher returning what is new."""
        modules = self.ctx.flow.value.modules
        return bool(modules) and modules[0] is module and bool(getattr(module.value, "is_trigger", False))

    def _stop_with_error(self, st: StepState, path: str, stop: StopAfterIf) -> Status:
        """Windmill (get_stop_after_if_data): the flow fails with an EarlyStopError whose message
        is `error_message`, or "stop after if: <expr>" when it is empty; no failure module runs."""
        error = ErrorInfo(
            name="EarlyStopError",
            message=stop.error_message or f"stop after if: {stop.expr}",
            step_id=path,
            result=st.result if stop.error_include_result else None,
        )
        self.mark_failed(st, Failed(error, error_value(error), handled=True))
        st.stopped = True
        return Failed(error, st.result, handled=True)

    def _sleep(self, module: FlowModule, path: str, st: StepState, frame: Frame) -> Status | None:
        if module.sleep is None:
            return None
        if st.sleep_until is None:
            # Windmill evaluates `sleep` with result (and previous_result) = the step's own result.
            own = Frame(frame.flow_input, frame.results, st.result, dict(frame.extra), frame.approval)
            seconds = self.number(module.sleep, own, path, "sleep", {"result": st.result}) or 0.0
            st.sleep_until = (st.finished_at or self.now) + seconds
        if self.now < st.sleep_until:
            self.wake(st.sleep_until)
            return WAITING
        return None

    # --- scripts ---------------------------------------------------------------

    def _launch(self, module: FlowModule, path: str, st: StepState, frame: Frame) -> None:
        # Counted first: an attempt whose inputs fail to evaluate is a failed attempt (and retries end).
        st.attempts += 1
        script = script_code(module, self.ctx.library, path)
        preprocessor = path == PREPROCESSOR_PATH
        if preprocessor:
            args = dict(self.state.args)
        else:
            args = self.args(module.value.input_transforms, frame, path)  # type: ignore[union-attr]
        timeout = tighter(self.number(module.timeout, frame, path, "timeout"), frame.timeout_s)
        self.actions.append(
            RunStep(path=path, attempt=st.attempts, step_id=module.id, args=args, timeout_s=timeout,
                    entrypoint="preprocessor" if preprocessor else "main", **script.request_fields())
        )


    # --- expressions -------------------------------------------------------------

    def args(self, transforms: Mapping[str, Any], frame: Frame, path: str) -> dict[str, Any]:
        # Windmill (transform_input) binds `params` before any argument is evaluated: always {}.
        return {name: self.transform(transform, frame, path, f"input_transforms.{name}", params={})
                for name, transform in transforms.items()}

    def transform(self, transform: Any, frame: Frame, path: str, field: str,
                  params: dict[str, Any] | None = None, extra: dict[str, Any] | None = None) -> Any:
        return self.ctx.evaluator.transform(transform, frame, path, field, params, extra)

    def truthy(self, expr: str, frame: Frame, path: str, field: str, extra: dict[str, Any] | None = None) -> bool:
        return self.ctx.evaluator.truthy(expr, frame, path, field, extra)

    def test(self, expr: str, frame: Frame, path: str, field: str, result: Any, extra: dict[str, Any] | None = None) -> bool:
        """A condition as Windmill's compute_bool_from_expr evaluates it: `result` and
        `previous_result` are both the value under test."""
        tested = Frame(frame.flow_input, frame.results, result, dict(frame.extra), frame.approval)
        return self.truthy(expr, tested, path, field, {"result": result, **(extra or {})})

    def number(self, value: Any, frame: Frame, path: str, field: str, extra: dict[str, Any] | None = None) -> float | None:
        if value is None or isinstance(value, (int, float)):
            return value
        result = self.transform(value, frame, path, field, extra=extra)
        if result is None:
            return None
        if not isinstance(result, (int, float)) or isinstance(result, bool):
            raise StepFailure(ErrorInfo(name="InputTransformError", message=f"'{field}' must be a number, got {result!r}", step_id=path))
        return float(result)

    def wake(self, at: float) -> None:
        self.wake_at = at if self.wake_at is None else min(self.wake_at, at)


@dataclass(frozen=True)
class ScriptCode:
    """What a script step's attempt runs: its runtime language, code, lock, the workspace scripts it
    imports (by the file they become beside it) and its own workspace path when it is run by path."""

    language: Language
    code: str
    lock: str | None
    modules: dict[str, str]
    script_path: str | None

    def request_fields(self) -> dict[str, Any]:
        return {"language": self.language, "code": self.code, "lock": self.lock, "modules": self.modules,
                "script_path": self.script_path}


def script_code(module: FlowModule, library: Library, path: str) -> ScriptCode:
    """The code of a script step (inline or by path); StepFailure when it cannot run."""
    value = module.value
    script_path = None
    if isinstance(value, RawScript):
        language, content, lock = value.language, value.content, value.lock
    else:
        assert isinstance(value, PathScript)
        script = library.scripts.get(value.path)
        if script is None:
            raise StepFailure(ErrorInfo(name="ScriptNotFound", message=f"script '{value.path}' is not available", step_id=path))
        language, content, lock, script_path = script.language, script.content, script.lock, value.path
    runtime = runtime_language(language)
    if runtime is None:
        raise StepFailure(ErrorInfo(name="UnsupportedLanguage", message=f"language '{language}' is not supported", step_id=path))
    if content is None:
        raise StepFailure(ErrorInfo(name="MissingBody", message="the script body is not available", step_id=path))
    imported = imported_scripts(runtime, content, library.scripts.get, script_path)
    modules = {module_file(found.language, p): found.content for p, found in imported.items()}
    return ScriptCode(step_language(runtime, content), content, lock, modules, script_path)
