"""How a run's outcome is told and what exit code it gives: `millrace run` and `kubectl millrace run --follow`."""

from __future__ import annotations

import json
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # only states that exist are told: the models are loaded by then
    from ..model.run import RunStatus

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2


def exit_code(state: RunStatus) -> int:
    return EXIT_OK if state.phase in ("Succeeded", "Suspended") else EXIT_FAILED


def report(output: str, run_id: str, flow_name: str, state: RunStatus, command: str = "millrace") -> None:
    """The outcome: one JSON document on stdout, or a line on stderr and the result on stdout.
    `command` is what the user types to resume or cancel the run."""
    # A suspended run has not finished: its duration is the time it has taken so far.
    end = state.finished_at if state.finished_at is not None else time.time()
    duration = end - state.started_at if state.started_at is not None else 0.0
    if output == "json":
        outcome = {
            "run": run_id,
            "flow": flow_name,
            "phase": state.phase,
            "result": state.result,
            "error": state.error.model_dump(exclude_none=True) if state.error else None,
            "duration_s": round(duration, 4),
        }
        if state.suspended_step:
            outcome["suspended_step"] = state.suspended_step
        if state.early_returned:
            outcome["early_result"] = state.early_result
        print(json.dumps(outcome, indent=2, default=str))
        return
    if state.phase == "Suspended":
        print_suspended(run_id, state, command)
        return
    if state.error:
        where = f" in step '{state.error.step_id}'" if state.error.step_id else ""
        print(f"run {run_id} {state.phase.lower()}{where}: {state.error.name}: {state.error.message}", file=sys.stderr)
        if state.error.stack:
            print(state.error.stack.rstrip(), file=sys.stderr)
    else:
        print(f"run {run_id} {state.phase.lower()} in {duration:.2f}s", file=sys.stderr)
    if state.phase == "Succeeded" or state.result is not None:
        print(json.dumps(state.result, indent=2, default=str))


def print_suspended(run_id: str, state: RunStatus, command: str = "millrace") -> None:
    print(f"run {run_id} suspended at step '{state.suspended_step}'. To go on:\n"
          f"  {command} resume {run_id} [--payload JSON] [--approver NAME]\n"
          f"  {command} cancel {run_id}", file=sys.stderr)
