"""Which containers' inner steps report to the enclosing flow's root job (engine/scope.py).

Windmill (worker_flow.rs push_next_flow_job) gives the sub-flows of branches
and sequential loops the enclosing root job, and none to a parallel for
loop's iterations or to an inner flow. On its own, for the validator, which
imports nothing of the run state.
"""

from __future__ import annotations

from ..model.flow import BranchAll, BranchOne, FlowModule, ForloopFlow, WhileloopFlow


def shares_root(module: FlowModule) -> bool:
    """Whether the container's inner steps report to the enclosing flow's root job."""
    value = module.value
    if isinstance(value, ForloopFlow):
        return not value.parallel
    return isinstance(value, (WhileloopFlow, BranchOne, BranchAll))
