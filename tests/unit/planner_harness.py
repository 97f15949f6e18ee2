"""A pure, synchronous shell for planner tests: no processes, no clock."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Callable

import yaml

from millrace.engine.actions import CancelStep, RunStep
from millrace.engine.evaluate import Evaluator
from millrace.engine.events import Event, Start, StepFinished, Tick
from millrace.engine.library import Library
from millrace.engine.planner import PlanContext, plan
from millrace.expressions import Sandbox
from millrace.model.flow import OpenFlow
from millrace.model.run import RunStatus, StepState
from millrace.runtime.protocol import StepError, StepOutcome

StepFn = Callable[[RunStep], Any]

_SANDBOX = Sandbox()


def flow_from_yaml(text: str) -> OpenFlow:
    return OpenFlow.model_validate(yaml.safe_load(text))


def script(step_id: str, expr_args: dict[str, str] | None = None, **module: Any) -> dict[str, Any]:
    """A rawscript module whose body the harness never runs (step_fn decides)."""
    transforms = {k: {"type": "javascript", "expr": v} for k, v in (expr_args or {}).items()}
    return {
        "id": step_id,
        "value": {"type": "rawscript", "language": "python3", "content": "def main(): pass", "input_transforms": transforms},
        **module,
    }


def flow(*modules: dict[str, Any], schema: dict[str, Any] | None = None, **value: Any) -> OpenFlow:
    return OpenFlow.model_validate({"summary": "t", "value": {"modules": list(modules), **value}, "schema": schema})


class StepFailed(Exception):
    """Raise from a step function to make the step fail."""


@dataclass
class Harness:
    flow: OpenFlow
    step_fn: StepFn
    library: Library = field(default_factory=Library)
    variables: dict[str, Any] = field(default_factory=dict)
    resources: dict[str, Any] = field(default_factory=dict)
    now: float = 1000.0
    max_in_flight: int = 0
    started: list[RunStep] = field(default_factory=list)
    cancelled: list[CancelStep] = field(default_factory=list)
    events: int = 0
    # When set, the running steps finish in a random order drawn from it (else first started, first done).
    order: random.Random | None = None
    # The most step states the run state held at once.
    max_steps: int = 0
    # Save and load the state as JSON between events, as a restarted shell would.
    reload: bool = False
    # The last state of every step compacted out of the run state, by path.
    compacted: dict[str, StepState] = field(default_factory=dict)

    def context(self) -> PlanContext:
        return PlanContext(
            flow_name="test",
            flow=self.flow,
            evaluator=Evaluator(_SANDBOX, self.variables, self.resources),
            library=self.library,
            max_while_iterations=20,
        )

    def run(self, args: dict[str, Any] | None = None, max_events: int = 500, preprocess: bool = False,
            initial: RunStatus | None = None) -> RunStatus:
        """Run to the end; `initial`: the state to start from (a restarted run's)."""
        ctx = self.context()
        state = initial or RunStatus()
        event: Event = Start(args=args or {}, now=self.now, preprocess=preprocess)
        queue: list[RunStep] = []
        wake: float | None = None
        while True:
            self.events += 1
            assert self.events < max_events, "the planner did not converge"
            before = state.model_dump()
            result = plan(ctx, state, event)
            assert state.model_dump() == before, "plan() changed the state it was given"
            state = result.state
            self.compacted.update(result.compacted)
            if self.reload:
                state = RunStatus.model_validate_json(state.model_dump_json(by_alias=True))
            self.max_steps = max(self.max_steps, len(state.steps))
            wake = result.wake_at
            for action in result.actions:
                if isinstance(action, RunStep):
                    queue.append(action)
                    self.started.append(action)
                else:
                    self.cancelled.append(action)
            self.max_in_flight = max(self.max_in_flight, len(queue))
            if state.terminal:
                return state
            if not queue:
                assert wake is not None, "the planner waits for nothing"
                self.now = wake
                event = Tick(now=self.now)
                continue
            action = queue.pop(self.order.randrange(len(queue)) if self.order else 0)
            self.now += 1
            event = StepFinished(path=action.path, attempt=action.attempt, outcome=self._outcome(action), now=self.now)

    def _outcome(self, action: RunStep) -> StepOutcome:
        try:
            return StepOutcome(ok=True, result=self.step_fn(action))
        except StepFailed as exc:
            return StepOutcome(ok=False, error=StepError(name="StepFailed", message=str(exc), stack="Traceback: ..."))


def echo_args(action: RunStep) -> Any:
    return action.args
