"""What happens to a run, as the shells report it to the planner."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, Field

from ..runtime.protocol import StepOutcome


class Start(BaseModel):
    kind: Literal["start"] = "start"
    args: dict[str, Any] = Field(default_factory=dict)
    now: float
    # Started by a trigger (a webhook): a flow's preprocessor_module turns `args` (the
    # trigger's event) into the flow input first; runs started by hand skip it, as in Windmill.
    preprocess: bool = False


class StepFinished(BaseModel):
    """A step attempt ended; `attempt` makes replays of old attempts harmless."""

    kind: Literal["step_finished"] = "step_finished"
    path: str
    attempt: int
    outcome: StepOutcome
    now: float


class Resumed(BaseModel):
    """An approval (or any resume event) for the suspended step."""

    kind: Literal["resumed"] = "resumed"
    payload: Any = None
    approver: str = "anonymous"
    now: float


class Disapproved(BaseModel):
    """An approver refused the suspended step: the run fails (or goes on, with
    `continue_on_disapprove_timeout`), it is not cancelled."""

    kind: Literal["disapproved"] = "disapproved"
    approver: str = "anonymous"
    now: float


class CancelRequested(BaseModel):
    """Cancel the run."""

    kind: Literal["cancel"] = "cancel"
    reason: str = "cancelled"
    by: str = "anonymous"
    now: float


class Tick(BaseModel):
    """Time passed (a retry delay may have elapsed)."""

    kind: Literal["tick"] = "tick"
    now: float


Event = Annotated[Union[Start, StepFinished, Resumed, Disapproved, CancelRequested, Tick], Field(discriminator="kind")]
