"""What the planner asks a shell to do. Every action is idempotent by key."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from ..runtime.protocol import Language


class AttemptAction(BaseModel):
    """An action on one attempt of a step; `key` is `<module path>/<attempt>`."""

    path: str
    attempt: int

    @property
    def key(self) -> str:
        return f"{self.path}/{self.attempt}"


class RunStep(AttemptAction):
    """Start one attempt of a step."""

    step_id: str
    language: Language
    code: str
    args: dict[str, Any] = Field(default_factory=dict)
    timeout_s: float | None = None
    # The function the wrapper calls: `preprocessor` for a flow's preprocessor_module.
    entrypoint: str = "main"
    lock: str | None = None  # pinned requirements of a Python step
    # Workspace scripts the code imports, by the file path they take beside it (u/admin/helper.py).
    modules: dict[str, str] = Field(default_factory=dict)
    script_path: str | None = None  # the workspace path of a step run by path: its relative imports start there


class RunFlow(AttemptAction):
    """Start an inner flow as a run of its own (the cluster's child FlowRun)."""

    step_id: str
    flow_path: str
    args: dict[str, Any] = Field(default_factory=dict)
    # How deep the child run is nested under the top run (1 for a flow's own inner flows).
    depth: int = 1
    # The tightest timeout of the flow step and the containers around it: bounds every step of the child.
    timeout_s: float | None = None


class CancelStep(AttemptAction):
    """Stop a running attempt: the run no longer needs it."""


Action = RunStep | RunFlow | CancelStep
