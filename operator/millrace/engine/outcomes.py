"""What walking a module (or a sequence of them) tells its caller."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..model.run import ErrorInfo


@dataclass(frozen=True)
class Waiting:
    """Something is still running, sleeping or waiting for an approval."""


@dataclass(frozen=True)
class Done:
    result: Any


@dataclass(frozen=True)
class Stopped:
    """An early stop: ends the enclosing loop (or sequential branch-all), or the flow."""

    result: Any
    skip: bool = False


@dataclass(frozen=True)
class Failed:
    """A failure. `result` is what the failed module reports as its result (the error
    value, a loop's results so far, a failure module's result); `handled` says a
    failure module already ran for it; `recovered` that it returned `recover: true`."""

    error: ErrorInfo
    result: Any
    handled: bool = False
    recovered: bool = False


Status = Waiting | Done | Stopped | Failed
WAITING = Waiting()
