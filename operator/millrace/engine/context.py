"""What the planner is given besides the state and the event, and what it returns."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..model.flow import OpenFlow
from ..model.run import RunStatus, StepState
from .actions import Action
from .evaluate import Evaluator
from .library import Library

# Inner flows nested deeper than this stop the run: a flow that calls itself
# through `flow` steps would otherwise never end.
MAX_FLOW_DEPTH = 16


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
    # How deep this run is nested under a top run (child runs of inner flows).
    depth: int = 0
    max_depth: int = MAX_FLOW_DEPTH
    # The tightest timeout of the containers around this run, for a child run.
    timeout_s: float | None = None


@dataclass
class Plan:
    state: RunStatus
    actions: list[Action]
    wake_at: float | None = None
    # The last states of the steps of iterations compacted by this plan (gone from `state.steps`),
    # for a shell that reports step outcomes.
    compacted: dict[str, StepState] = field(default_factory=dict)
