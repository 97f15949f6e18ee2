"""The local shell: drive the planner with real processes on this machine.

The loop is the imperative edge around the pure planner: it turns RunStep
actions into step processes, step completions and timers into events, and
saves the run state after every transition.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from contextlib import nullcontext
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol

from ..engine.actions import Action, CancelStep, RunStep
from ..engine.evaluate import Evaluator
from ..engine.events import Disapproved, Event, Resumed, Start, StepFinished, Tick
from ..engine.library import Library
from ..engine.planner import Plan, PlanContext, plan
from ..expressions import Sandbox
from ..model.loader import LoadedFlow
from ..model.run import RunStatus, StepState
from ..runtime.protocol import StepError, StepOutcome, StepRequest
from ..runtime.redact import redact_json
from ..telemetry.context import run_trace
from .datastore import DataStore
from .stepapi import Approval
from .store import RunStore, new_run_id

MAX_PARALLEL_STEPS = 16
# The run record is rewritten at most this often while steps run; always at the end or a suspension.
SAVE_INTERVAL_S = 0.1


class Approvals(Protocol):
    def listen(self, run: str) -> None: ...

    def observe(self, run: str, status: RunStatus) -> None: ...

    def take_approval(self, run: str, timeout: float | None) -> Approval | None: ...


class StepExecutor(Protocol):
    def run(self, request: StepRequest) -> StepOutcome: ...


Observer = Callable[[str, RunStatus], None]


@dataclass
class LocalRun:
    """One execution of a flow on this machine."""

    loaded: LoadedFlow
    executor: StepExecutor
    library: Library = field(default_factory=Library)
    store: RunStore = field(default_factory=RunStore)
    # Variables, resources, secrets and flow user state; the same store the executor's step API serves.
    data: DataStore = field(default_factory=DataStore)
    # Fixed values for input transforms in place of the data store's (tests, benchmarks).
    variables: Mapping[str, Any] | None = None
    resources: Mapping[str, Any] | None = None
    observer: Observer | None = None
    run_id: str = ""
    keep_workdirs: bool = False
    # Approvals that came through the step API's signed links, and whether to wait for one
    # (`millrace run --wait`) rather than exit when the run suspends.
    approvals: Approvals | None = None
    wait_when_suspended: bool = False
    # A schedule's runs keep their step states apart from runs started by hand (Windmill's trigger state).
    state_scope: str = ""
    # The expression sandbox, its owner's to close (`millrace run` hands over the one that checked
    # the flow, with V8 started if the flow needed it); None: each proceed() has its own.
    sandbox: Sandbox | None = None

    def __post_init__(self) -> None:
        self.run_id = self.run_id or new_run_id(self.loaded.name)
        if self.loaded.source is not None:  # a new run of a flow file, not one resumed from its record
            self.loaded.key = self.data.state_key(self.loaded.name, self.loaded.source)
            if self.state_scope:
                self.loaded.key = f"{self.loaded.key}/{self.state_scope}"
        if self.approvals is not None:
            self.approvals.listen(self.run_id)
        self.run_dir = self.store.run_dir(self.run_id)
        # Step working directories are scratch: a temporary folder is much cheaper to clear.
        self.scratch = Path(tempfile.mkdtemp(prefix=f"millrace-{self.run_id}-"))
        self._saved_at = 0.0

    def execute(self, args: dict[str, Any], preprocess: bool = False, initial: RunStatus | None = None) -> RunStatus:
        """Start the run; return when it ends or suspends. `preprocess`: `args` is a trigger's event;
        `initial`: the state a restarted run starts from (engine/restart.py)."""
        self.store.save_definition(self.run_id, self.loaded, self.library)
        return self.proceed(initial or RunStatus(), Start(args=args, now=time.time(), preprocess=preprocess))

    def proceed(self, state: RunStatus, event: Event) -> RunStatus:
        """Apply `event` to a saved state and run until the run ends or suspends.

        What it returns is the run record as saved: secret values masked.
        """
        live_variables, live_resources = self.data.views()
        variables = live_variables if self.variables is None else self.variables
        resources = live_resources if self.resources is None else self.resources
        with nullcontext(self.sandbox) if self.sandbox is not None else Sandbox() as sandbox:
            ctx = PlanContext(
                flow_name=self.loaded.name,
                flow=self.loaded.flow,
                evaluator=Evaluator(sandbox, variables, resources),
                library=self.library,
            )
            with ThreadPoolExecutor(max_workers=MAX_PARALLEL_STEPS, thread_name_prefix="step") as pool:
                return self._redacted(self._loop(ctx, pool, state, event))

    def _loop(self, ctx: PlanContext, pool: ThreadPoolExecutor, state: RunStatus, event: Event) -> RunStatus:
        running: dict[Future[StepOutcome], RunStep] = {}
        try:
            while True:
                result = plan(ctx, state, event)
                state = result.state
                if self.approvals is not None:
                    self.approvals.observe(self.run_id, state)
                self._publish(state, result.compacted)
                self._dispatch(result, pool, running)
                if state.terminal:
                    return state
                if state.phase == "Suspended" and not running:
                    approval = self._approval(result.wake_at)
                    if approval is None:
                        return state
                    event = approval
                    continue
                event = self._next_event(running, result.wake_at)
        finally:
            self._cleanup(state)

    def _approval(self, wake_at: float | None) -> Event | None:
        """An approval from a signed link for the suspended run; with --wait, wait for one
        (or for the suspend timeout, which a Tick then applies)."""
        if self.approvals is None:
            return None
        timeout = None
        if self.wait_when_suspended:
            timeout = max(0.0, wake_at - time.time()) if wake_at is not None else 24 * 3600.0
        approval = self.approvals.take_approval(self.run_id, timeout)
        if approval is None:
            return Tick(now=time.time()) if self.wait_when_suspended else None
        request = approval.request
        if approval.cancel:
            # A resume link's cancel URL disapproves the suspended step: the run fails, it is not cancelled.
            return Disapproved(approver=request.approver, now=time.time())
        return Resumed(payload=request.payload, approver=request.approver, now=time.time())

    def _publish(self, state: RunStatus, compacted: Mapping[str, StepState] | None = None) -> None:
        now = time.monotonic()
        save = state.terminal or state.phase == "Suspended" or now - self._saved_at >= SAVE_INTERVAL_S
        if save:
            state.user_state = self.data.user_state(self.run_id)
        # An expression's error can quote a secret value: the terminal sees what the record holds.
        shown = self._redacted(state)
        if save:
            self.store.save(self.run_id, self.loaded.name, shown)
            self._saved_at = now
        if self.observer:
            # The steps of a loop iteration that just ended have left the state: the observer sees their end once.
            self.observer(self.run_id, shown.model_copy(update={"steps": {**self._redacted_steps(compacted), **shown.steps}})
                          if compacted else shown)

    def _redacted(self, state: RunStatus) -> RunStatus:
        """The state as it may be stored or shown: results that hold a secret value are masked.

        The running flow keeps the real values; a run resumed from its record sees the masks.
        """
        secrets = self.data.secrets()
        if not secrets:
            return state
        return RunStatus.model_validate(redact_json(state.model_dump(mode="json", by_alias=True), secrets))

    def _redacted_steps(self, steps: Mapping[str, StepState]) -> dict[str, StepState]:
        secrets = self.data.secrets()
        if not secrets:
            return dict(steps)
        return {path: StepState.model_validate(redact_json(st.model_dump(mode="json", by_alias=True), secrets))
                for path, st in steps.items()}

    def _dispatch(
        self, result: Plan, pool: ThreadPoolExecutor, running: dict[Future[StepOutcome], RunStep]
    ) -> None:
        for action in result.actions:
            if isinstance(action, RunStep):
                running[pool.submit(self._run_step, action)] = action
            elif isinstance(action, CancelStep):
                self._cancel(action)

    def _cancel(self, action: CancelStep) -> None:
        cancel = getattr(self.executor, "cancel", None)
        if cancel is not None:
            cancel(action.key)

    def _next_event(
        self, running: dict[Future[StepOutcome], RunStep], wake_at: float | None
    ) -> Event:
        timeout = None if wake_at is None else max(0.0, wake_at - time.time())
        if not running:
            if timeout is None:
                raise RuntimeError("the run is waiting for nothing: no step is running and no timer is set")
            time.sleep(timeout)
            return Tick(now=time.time())
        done, _ = wait(running, timeout=timeout, return_when=FIRST_COMPLETED)
        if not done:
            return Tick(now=time.time())
        future = next(iter(done))
        action = running.pop(future)
        return StepFinished(path=action.path, attempt=action.attempt, outcome=_outcome(future), now=time.time())

    def _run_step(self, action: RunStep) -> StepOutcome:
        workdir = self.scratch / action.path / str(action.attempt)
        workdir.mkdir(parents=True, exist_ok=True)
        if self.loaded.flow.value.same_worker:
            shared = self.run_dir / "shared"
            shared.mkdir(exist_ok=True)
            link = workdir / "shared"
            if not link.exists():
                link.symlink_to(shared, target_is_directory=True)
        request = StepRequest(
            key=action.key,
            language=action.language,
            code=action.code,
            args=action.args,
            workdir=str(workdir),
            env={
                "MILLRACE_RUN_ID": self.run_id,
                "MILLRACE_FLOW": self.loaded.key,
                "MILLRACE_STEP_PATH": action.path,
                "WM_FLOW_STEP_ID": action.step_id,
                # The attempt's span in a trace of the run's own, as in the cluster (no spans are exported here).
                "TRACEPARENT": run_trace(self.run_id, None).step(action.path, action.attempt).traceparent,
            },
            timeout_s=action.timeout_s,
            entrypoint=action.entrypoint,
            lock=action.lock,
            modules=action.modules,
            script_path=action.script_path,
        )
        return self.executor.run(request)

    def _cleanup(self, state: RunStatus) -> None:
        if self.keep_workdirs:
            print(f"step working directories kept in {self.scratch}", file=sys.stderr)
        else:
            shutil.rmtree(self.scratch, ignore_errors=True)
        if state.terminal:
            # The shared directory lives as long as the run, no longer (a suspended run keeps it).
            shutil.rmtree(self.run_dir / "shared", ignore_errors=True)


def _outcome(future: Future[StepOutcome]) -> StepOutcome:
    try:
        return future.result()
    except Exception as exc:  # an executor bug must fail the step, not the engine
        return StepOutcome(ok=False, error=StepError(name=type(exc).__name__, message=str(exc)))

