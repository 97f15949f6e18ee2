"""The planner: (flow, run state, event) -> (new run state, actions).

Pure: no clock, no files, no network. Time arrives in the event, scripts
and sub-flows in the Library, variables and resources as mappings. Each
call applies the event, then walks the flow from the top (walker.py). Every
decision taken on the way (a loop's items, the branch chosen, an early
stop) is memoised in the state, so walking again gives the same answer and
a restarted shell can resume from the saved state alone.
"""

from __future__ import annotations

from ..model.run import RunStatus
from .context import Plan, PlanContext
from .events import Event
from .walker import Walker

__all__ = ["Plan", "PlanContext", "plan"]


def plan(ctx: PlanContext, state: RunStatus, event: Event) -> Plan:
    """Apply one event and decide what happens next. `state` is left as it was."""
    # Copy on write: the new state shares every StepState the walk does not change.
    own = state.model_copy(update={"steps": dict(state.steps)})
    return Walker(ctx, own, event.now).run(event)
