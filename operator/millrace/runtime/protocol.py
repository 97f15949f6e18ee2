"""The step protocol: what a shell hands a step process, and what comes back.

These documents cross the boundary between the engine and whatever runs the
step (a local process or a Kubernetes Job), so they are pydantic models.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, Field

from .languages import Language


# The step's identity as the shell puts it in its environment (Windmill's name for the step id).
RUN_ID_ENV, FLOW_ENV, STEP_ID_ENV = "MILLRACE_RUN_ID", "MILLRACE_FLOW", "WM_FLOW_STEP_ID"
ADHOC = "adhoc"  # run and flow of a request that names none, e.g. one run by a benchmark


class StepScope(BaseModel):
    """Which attempt of which step of which run: what a step API token grants access to.

    The state of a step (get_state/set_state) is kept per `<flow>/<step_id>`,
    as Windmill keeps it per flow step, so it carries over between runs; runs a
    schedule started keep theirs apart, under `state_scope` (Windmill keeps a
    trigger script's state per schedule).
    """

    run: str
    flow: str
    path: str
    step_id: str
    attempt: int
    state_scope: str = ""

    @property
    def key(self) -> str:
        return f"{self.path}/{self.attempt}"

    @property
    def state_path(self) -> str:
        return f"{self.flow}/{self.state_scope}/{self.step_id}" if self.state_scope else f"{self.flow}/{self.step_id}"


class StepRequest(BaseModel):
    """Everything a step process needs: code, arguments, where to run."""

    key: str = Field(description="Deterministic attempt key, e.g. 'loop/3/inner/1'.")
    language: Language
    code: str
    args: dict[str, Any] = Field(default_factory=dict)
    workdir: str = Field(description="Working directory; contains ./shared when the flow shares one.")
    env: dict[str, str] = Field(default_factory=dict)
    timeout_s: float | None = None
    entrypoint: str = Field(default="main", description="The script's function to call.")
    lock: str | None = Field(default=None, description="Pinned requirements (Windmill's lock) of a Python step.")
    modules: dict[str, str] = Field(default_factory=dict, description="Workspace scripts the code imports: "
                                    "file path beside the step (u/admin/helper.py) -> content.")
    script_path: str | None = Field(default=None, description="Workspace path of a script run by path: "
                                    "where its relative imports resolve.")

    def scope(self) -> StepScope:
        """The attempt's identity: run and flow from the environment, path and attempt from the key."""
        path, _, attempt = self.key.rpartition("/")
        step_id = self.env.get(STEP_ID_ENV) or path.rpartition("/")[2]
        return StepScope(run=self.env.get(RUN_ID_ENV, ADHOC), flow=self.env.get(FLOW_ENV, ADHOC),
                         path=path, step_id=step_id, attempt=int(attempt))


class StepError(BaseModel):
    """An error raised by a step, kept with its traceback."""

    name: str
    message: str
    stack: str = ""
    # Set for a process that exited non-zero (Windmill: common.rs extract_error_value).
    exit_code: int | None = None


class StepOutcome(BaseModel):
    """What a finished step process reported."""

    ok: bool
    result: Any = None
    error: StepError | None = None
    logs: str = ""
    duration_s: float = 0.0


class StepReport(BaseModel):
    """What a step's wrapper reports: its outcome less what only the runner knows.

    A wrapper that cannot parse JSON (bash) hands its result over as text in
    `result_json`; the receiver parses it, so a bad result.json is an error of
    the step rather than an unreadable report.
    """

    ok: bool
    result: Any = None
    error: StepError | None = None
    result_json: str | None = None

    def outcome(self, logs: str, duration_s: float) -> StepOutcome:
        ok, result, error = self.ok, self.result, self.error
        if self.result_json is not None:
            try:
                result = json.loads(self.result_json)
            except ValueError as problem:
                ok, result = False, None
                error = StepError(name="ResultError", message=f"result.json is not JSON: {problem}")
        return StepOutcome(ok=ok, result=result, error=error, logs=logs, duration_s=duration_s)
