"""What the step API's calls do, behind one protocol: files locally, Kubernetes objects in a cluster.

Every method gets the verified claims of the calling step, so a backend
scopes each call to that run and step. A refusal is raised as a Refusal,
which the server turns into its HTTP status and a JSON error.
"""

from __future__ import annotations

from typing import Any, Protocol

from ..protocol import StepReport
from .models import Resource, ResumeRequest, Variable
from .tokens import Claims


class Refusal(Exception):
    status = 400
    error = "Invalid"

    def __init__(self, message: str, **detail: Any) -> None:
        super().__init__(message)
        self.detail = detail


class Forbidden(Refusal):
    status, error = 403, "Forbidden"


class NotFound(Refusal):
    status, error = 404, "NotFound"


class Conflict(Refusal):
    status, error = 409, "Conflict"


class Gone(Refusal):
    """What a link or token was for has ended: the run finished, or the suspension it was issued for is over."""

    status, error = 410, "Gone"


class Backend(Protocol):
    def authorize(self, claims: Claims) -> None:
        """Forbidden unless the claims' attempt is running now: checked before every step call."""

    def report(self, claims: Claims, report: StepReport, pod: str | None = None) -> None:
        """Record the attempt's outcome; Conflict when one is recorded already. `pod`: the pod the
        step says it runs in (unchecked)."""

    def get_state(self, claims: Claims) -> Any: ...

    def set_state(self, claims: Claims, value: Any) -> None: ...

    def get_variable(self, claims: Claims, path: str) -> str: ...

    def set_variable(self, claims: Claims, path: str, variable: Variable) -> None: ...

    def get_resource(self, claims: Claims, path: str) -> Any: ...

    def set_resource(self, claims: Claims, path: str, resource: Resource) -> None: ...

    def get_flow_user_state(self, claims: Claims, key: str) -> Any: ...

    def set_flow_user_state(self, claims: Claims, key: str, value: Any) -> None: ...

    def check_link(self, claims: Claims) -> None:
        """Gone unless the link's suspension is still to come or under way (see links.py)."""

    def resume(self, claims: Claims, request: ResumeRequest) -> None:
        """An approval (claims.use == "resume") or a disapproval ("cancel") of the step's run.

        Bound to the suspension of the attempt in the claims: Gone once that
        suspension or the run has ended; a link (claims.link) used again
        counts once."""
