"""When a resume or cancel link counts: one rule for both shells, on the run's state.

A link is issued by a step's attempt (`wmill.get_resume_urls()`) for the
suspension that follows it. It is accepted while that attempt still runs
(the approval then waits for the suspension, as an early approval does in
Windmill), and while the run is suspended on that very attempt; once the run
has finished, the step has been retried, or the suspension has ended
(approved, timed out, cancelled), the link is void.
"""

from __future__ import annotations

from ...model.run import RunStatus

WAIT, APPLY = "wait", "apply"


def link_state(path: str, attempt: int, run: RunStatus) -> str:
    """WAIT (hold the approval until the run suspends there), APPLY, or why the link is void."""
    if run.terminal:
        return f"the run has finished ({run.phase.lower()}): its links are void"
    step = run.steps.get(path)
    if step is None or step.attempts != attempt:
        return f"this link is for attempt {attempt} of step {path}, which is not the step's current attempt"
    if step.phase == "Running" and step.awaiting_since is None:
        return WAIT
    if run.suspended_step == path and step.awaiting_since is not None:
        return APPLY
    return f"the suspension of step {path} (attempt {attempt}) this link was issued for has ended"
