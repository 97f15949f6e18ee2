"""The bodies the step API reads and writes. Every one crosses a process boundary."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Value(BaseModel):
    """Any JSON value: a state, a flow user state entry, a variable's or resource's value."""

    value: Any = None


class Variable(BaseModel):
    """A variable as stored and as a step writes it."""

    value: str
    is_secret: bool = False
    description: str = ""


class Resource(BaseModel):
    """A resource (typed JSON) as stored and as a step writes it."""

    value: Any = None
    resource_type: str = "any"
    description: str = ""


class ResumeUrls(BaseModel):
    """Windmill's names: `approvalPage` shows the request, `resume` and `cancel` act on it."""

    approvalPage: str
    resume: str
    cancel: str


class ResumeRequest(BaseModel):
    payload: Any = None
    approver: str = "anonymous"


class Recorded(BaseModel):
    ok: bool = True


class ApiError(BaseModel):
    """Every refusal: a short machine name and a sentence for the person reading the log."""

    error: str
    message: str
    detail: dict[str, Any] = Field(default_factory=dict)
