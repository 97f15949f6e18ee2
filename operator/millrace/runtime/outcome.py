"""What a step's ending means: its report if it made one, else how its process ended."""

from __future__ import annotations

import re
import signal

from pydantic import ValidationError

from .protocol import StepError, StepOutcome, StepReport


# What of a log Windmill quotes in an exit-code error (the bash and load-failure wrappers quote the same).
EXIT_LOG_TAIL = 600
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def interpret(report: str | None, returncode: int, logs: str, duration_s: float,
              exit_name: str | None = None) -> StepOutcome:
    """The outcome of a step process that ended by itself with `returncode` (-N: signal N).

    A process of a language Windmill runs (`exit_name`, languages.py) that exits non-zero without
    a report fails as Windmill's does (common.rs extract_error_value): an ExecutionErr with the
    exit code and the end of the log."""
    if report is None:
        if returncode > 0 and exit_name is not None:
            return failed(exit_error(exit_name, returncode, logs), logs, duration_s)
        return failed(StepError(name="StepCrashed", message=ended_without_report(returncode)), logs, duration_s)
    try:
        return StepReport.model_validate_json(report).outcome(logs, duration_s)
    except ValidationError as problem:
        error = StepError(name="ProtocolError", message=f"the step reported an unreadable outcome: {problem}")
        return failed(error, logs, duration_s)


def failed(error: StepError, logs: str = "", duration_s: float = 0.0) -> StepOutcome:
    return StepOutcome(ok=False, error=error, logs=logs, duration_s=duration_s)


def exit_error(exit_name: str, code: int, logs: str) -> StepError:
    """Windmill's error for a process that exited with `code`: the last characters of its log, trimmed,
    colour codes removed."""
    tail = _ANSI.sub("", logs[-EXIT_LOG_TAIL:].strip())
    return StepError(name="ExecutionErr", message=f'exit code for "{exit_name}": {code}, last log lines:\n{tail}',
                     exit_code=code)


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
