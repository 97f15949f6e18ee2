"""The run state: exactly what `FlowRun.status` holds.

One serialisable value. The planner maps (state, event) to a new state and
actions; every expression it evaluates is memoised here so that replaying
the same state gives the same decisions, locally or after an operator
restart.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from .base import KubeModel
from .times import Time

SCRIPT_TYPES: frozenset[str] = frozenset({"rawscript", "script"})
RunPhase = Literal["Pending", "Running", "Suspended", "Succeeded", "Failed", "Cancelled"]
StepPhase = Literal["Pending", "Running", "Succeeded", "Failed", "Skipped"]
TERMINAL_RUN_PHASES: frozenset[str] = frozenset({"Succeeded", "Failed", "Cancelled"})


class ErrorInfo(KubeModel):
    """A step or run error, with the keys of Windmill's error objects.

    `step_id` names the module path that failed (error objects show its last
    segment, the module id); `result` is the step's own result when a
    `stop_after_if` with `error_include_result` raised it; `exit_code` is set
    when the step's process exited non-zero.
    """

    name: str
    message: str
    stack: str = ""
    step_id: str | None = Field(default=None, alias="step_id")
    result: Any = None
    exit_code: int | None = None


# Finished iterations' results are sealed in chunks of this many, each written once.
RESULT_CHUNK = 100


class LoopProgress(KubeModel):
    """A loop's finished iterations, compacted: their inner step states are gone.

    The walker visits only `active` iterations. Results sit in `pending` (by
    index) until all of a chunk's iterations have finished, then move to a
    sealed chunk of `chunks` that is never rewritten. The body's results of
    the finished iterations, the latest winning (`carried`, what the next iteration
    sees; `last_body`, what stays visible after the loop) are
    kept; `inner_attempts` is the highest attempt count of a compacted inner
    step, so that a loop run again never reuses an attempt key (`floor`).
    """

    active: list[int] = Field(default_factory=list)
    pending: dict[int, Any] = Field(default_factory=dict)
    chunks: dict[int, list[Any]] = Field(default_factory=dict)
    finished: int = 0
    carried: dict[str, Any] = Field(default_factory=dict)
    carried_index: int = -1
    last_body: dict[str, Any] = Field(default_factory=dict)
    last_body_index: int = -1
    failure: ErrorInfo | None = None
    failure_index: int = -1
    failure_handled: bool = False
    inner_attempts: int = 0
    floor: int = 0
    # Set in FlowRun.status only: the ConfigMaps that hold large chunks and pending results (cluster/offload.py).
    chunk_refs: dict[int, list[str]] = Field(default_factory=dict)
    pending_refs: dict[int, list[str]] = Field(default_factory=dict)


class StepState(KubeModel):
    """State of one module instance, keyed by its module path.

    Leaf steps use phase/attempts/result/error. Containers also keep the
    decisions taken once: the loop's items, the branch chosen, how many
    iterations were started, whether an early stop fired.

    `attempts` counts every run of the module (script processes, child runs,
    runs of a container's body) and never goes back: a container run again
    leaves its inner steps `Pending` with `base_attempt` = their attempts so
    far, so an attempt key `<path>/<attempt>` is never reused.
    """

    phase: StepPhase = "Pending"
    type: str = ""
    attempts: int = 0
    base_attempt: int = 0
    started_at: Time | None = None
    finished_at: Time | None = None
    not_before: Time | None = None
    result: Any = None
    error: ErrorInfo | None = None
    items: list[Any] | None = None
    parallelism: int | None = None
    input: dict[str, Any] | None = None
    branch: int | None = None
    started: int = 0
    stopped: bool | None = None
    skip_stopped: bool = False
    final: bool = False
    handled: bool = False
    timeout_s: float | None = None
    sleep_until: Time | None = None
    awaiting_since: Time | None = None
    resumes: list[Any] | None = None
    approvers: list[str] | None = None
    disapprover: str | None = None
    resolved: bool = False
    # A refused suspension (disapproved, or timed out): the error the module after it fails with.
    refused: ErrorInfo | None = None
    result_ref: str | None = None
    # FlowRun.status only (cluster/offload.py): the ConfigMaps holding a large iterator, a large container result.
    items_ref: list[str] | None = None
    result_parts: list[str] | None = None
    loop: LoopProgress | None = None

    @property
    def runs_script(self) -> bool:
        """A step whose attempts are script processes (a Job in a cluster), not a container of steps."""
        return self.type in SCRIPT_TYPES


class RestartFrom(KubeModel):
    """Start a run from a top-level step of an earlier run of the same flow (Windmill's
    `RestartedFrom`): the steps before it keep the earlier run's recorded results."""

    run: str = Field(description="The earlier run: a FlowRun of the same namespace (a local run id locally).")
    step: str = Field(description="The id of the top-level step to run from; the steps before it are not run again.")


class RunStatus(KubeModel):
    """The whole state of one flow run."""

    phase: RunPhase = "Pending"
    started_at: Time | None = None
    finished_at: Time | None = None
    flow_generation: int | None = None
    args: dict[str, Any] = Field(default_factory=dict)
    steps: dict[str, StepState] = Field(default_factory=dict)
    result: Any = None
    error: ErrorInfo | None = None
    user_state: dict[str, Any] = Field(default_factory=dict)
    stopped_early: bool = False
    skipped: bool = False
    early_result: Any = None
    early_returned: bool = False
    suspended_step: str | None = None
    # A triggered run whose preprocessor_module has not given the flow input yet (args is the event).
    preprocessing: bool = False
    # Set when the run restarted from a step of an earlier run, whose results it copied (engine/restart.py).
    restarted_from: RestartFrom | None = None

    @property
    def terminal(self) -> bool:
        return self.phase in TERMINAL_RUN_PHASES
