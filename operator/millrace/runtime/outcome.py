"""What a step's ending means: its report if it made one, else how its process ended."""

from __future__ import annotations

import signal

from pydantic import ValidationError

from .protocol import StepError, StepOutcome, StepReport


def interpret(report: str | None, returncode: int, logs: str, duration_s: float) -> StepOutcome:
    """The outcome of a step process that ended by itself with `returncode` (-N: signal N)."""
    if report is None:
        return failed(StepError(name="StepCrashed", message=ended_without_report(returncode)), logs, duration_s)
    try:
        return StepReport.model_validate_json(report).outcome(logs, duration_s)
    except ValidationError as problem:
        error = StepError(name="ProtocolError", message=f"the step reported an unreadable outcome: {problem}")
        return failed(error, logs, duration_s)


def failed(error: StepError, logs: str = "", duration_s: float = 0.0) -> StepOutcome:
    return StepOutcome(ok=False, error=error, logs=logs, duration_s=duration_s)


def ended_without_report(returncode: int) -> str:
    if returncode >= 0:
        return f"the step process exited with code {returncode} before it reported an outcome"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = "a signal"
    return f"the step process was killed by {name} (signal {-returncode}) before it reported an outcome"


def timed_out(timeout_s: float) -> StepError:
    return StepError(name="TimeoutError", message=f"the step ran past its timeout of {timeout_s:g} s and was killed")


def cancelled() -> StepError:
    return StepError(name="CancelledError", message="the step was cancelled and killed")
