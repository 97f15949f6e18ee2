"""The step protocol: what a shell hands a step process, and what comes back.

These documents cross the boundary between the engine and whatever runs the
step (a local process or a Kubernetes Job), so they are pydantic models.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

Language = Literal["python3", "bash", "bun", "deno", "nativets"]


class StepRequest(BaseModel):
    """Everything a step process needs: code, arguments, where to run."""

    key: str = Field(description="Deterministic attempt key, e.g. 'loop/3/inner/1'.")
    language: Language
    code: str
    args: dict[str, Any] = Field(default_factory=dict)
    workdir: str = Field(description="Working directory; contains ./shared when the flow shares one.")
    env: dict[str, str] = Field(default_factory=dict)
    timeout_s: float | None = None


class StepError(BaseModel):
    """An error raised by a step, kept with its traceback."""

    name: str
    message: str
    stack: str = ""


class StepOutcome(BaseModel):
    """What a finished step process reported."""

    ok: bool
    result: Any = None
    error: StepError | None = None
    logs: str = ""
    duration_s: float = 0.0
