"""Errors a user sees: each names the flow, the step and the field."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a flow, located as precisely as we can."""

    flow: str
    message: str
    step: str | None = None
    field: str | None = None
    warning: bool = False

    def __str__(self) -> str:
        where = [f"flow '{self.flow}'"]
        if self.step:
            where.append(f"step '{self.step}'")
        if self.field:
            where.append(f"field '{self.field}'")
        kind = "warning: " if self.warning else ""
        return f"{kind}{', '.join(where)}: {self.message}"


class FlowError(Exception):
    """A flow that cannot be loaded, validated or started."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))

    @classmethod
    def single(cls, flow: str, message: str, step: str | None = None, field: str | None = None) -> FlowError:
        return cls([Problem(flow, message, step=step, field=field)])
