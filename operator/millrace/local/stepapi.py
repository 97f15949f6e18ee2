"""The step API of the local shell: a file backend served on 127.0.0.1.

The executor registers each attempt before it starts the step
(`LocalStepApi.register_attempt`) and gets the environment the step needs to
call the API. The report a step posts is written atomically to the
attempt's result file, which the executor reads when the process has ended.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ..model.run import RunStatus
from ..runtime.protocol import StepReport, StepScope
from ..runtime.stepapi.backend import Conflict, Forbidden, Gone, NotFound, Refusal
from ..runtime.stepapi.links import APPLY, WAIT, link_state
from ..runtime.stepapi.models import Resource, ResumeRequest, Variable
from ..runtime.stepapi.server import DEFAULT_MAX_BODY, StepApiServer
from ..runtime.stepapi.tokens import Claims
from .datastore import DataFileError, DataPathError, DataStore
from .store import write_json_atomic

API_URL_ENV, TOKEN_ENV = "MILLRACE_API_URL", "MILLRACE_TOKEN"
T = TypeVar("T")


@dataclass(frozen=True)
class Approval:
    """A resume or cancel that came through a signed link, for the suspension of `path` (attempt)."""

    request: ResumeRequest
    path: str
    attempt: int
    cancel: bool = False


@dataclass
class Attempt:
    result_file: Path
    reported: bool = False


class LocalBackend:
    """Variables, resources and states from a DataStore; reports to the attempts' result files."""

    def __init__(self, store: DataStore) -> None:
        self.store = store
        self._listening: set[str] = set()
        self._runs: dict[str, RunStatus] = {}  # the last state of each run served here
        self._links: set[str] = set()  # links used already: each counts once
        self._approvals: dict[str, list[Approval]] = {}
        self._arrived = threading.Event()
        self._attempts: dict[tuple[str, str], Attempt] = {}
        self._lock = threading.Lock()  # parallel steps of one run share its flow user state

    def register(self, scope: StepScope, result_file: Path) -> None:
        with self._lock:
            self._attempts[(scope.run, scope.key)] = Attempt(result_file)

    def release(self, scope: StepScope) -> None:
        with self._lock:
            self._attempts.pop((scope.run, scope.key), None)

    def authorize(self, claims: Claims) -> None:
        self._attempt(claims)

    def _attempt(self, claims: Claims) -> Attempt:
        attempt = self._attempts.get((claims.run, claims.key))
        if attempt is None:
            raise Forbidden(f"attempt {claims.key} of run {claims.run} is not running", run=claims.run, step=claims.key)
        return attempt

    def report(self, claims: Claims, report: StepReport, pod: str | None = None) -> None:
        with self._lock:
            attempt = self._attempt(claims)
            if attempt.reported:
                raise Conflict(f"attempt {claims.key} of run {claims.run} has reported its outcome already",
                               run=claims.run, step=claims.key)
            write_json_atomic(attempt.result_file, report.model_dump(mode="json"))
            attempt.reported = True

    def get_state(self, claims: Claims) -> Any:
        return _checked(lambda: self.store.get_state(claims.flow, claims.step_id))

    def set_state(self, claims: Claims, value: Any) -> None:
        _checked(lambda: self.store.set_state(claims.flow, claims.step_id, value))

    def get_variable(self, claims: Claims, path: str) -> str:
        variable = _checked(lambda: self.store.get_variable(path))
        if variable is None:
            raise NotFound(f"no variable at path '{path}' (set it with `millrace variable set {path} VALUE`)", path=path)
        return variable.value

    def set_variable(self, claims: Claims, path: str, variable: Variable) -> None:
        _checked(lambda: self.store.set_variable(path, variable))

    def get_resource(self, claims: Claims, path: str) -> Any:
        resource = _checked(lambda: self.store.get_resource(path))
        if resource is None:
            raise NotFound(f"no resource at path '{path}' (set it with `millrace resource set {path} JSON`)", path=path)
        return resource.value

    def set_resource(self, claims: Claims, path: str, resource: Resource) -> None:
        _checked(lambda: self.store.set_resource(path, resource))

    def get_flow_user_state(self, claims: Claims, key: str) -> Any:
        return _checked(lambda: self.store.user_state(claims.run)).get(key)

    def set_flow_user_state(self, claims: Claims, key: str, value: Any) -> None:
        with self._lock:
            state = _checked(lambda: self.store.user_state(claims.run))
            state[key] = value
            self.store.set_user_state(claims.run, state)

    def resume(self, claims: Claims, request: ResumeRequest) -> None:
        """Queue an approval (or a cancel) for the run: applied when it suspends on the link's attempt."""
        with self._lock:
            self._check_link(claims)
            if claims.link is not None:
                if claims.link in self._links:
                    return
                self._links.add(claims.link)
            self._approvals.setdefault(claims.run, []).append(
                Approval(request, claims.path, claims.attempt, cancel=claims.use == "cancel"))
        self._arrived.set()

    def check_link(self, claims: Claims) -> None:
        with self._lock:
            self._check_link(claims)

    def _check_link(self, claims: Claims) -> None:
        status = self._runs.get(claims.run)
        if claims.run not in self._listening or status is None:
            verb = "resume" if claims.use == "resume" else "cancel"
            raise Conflict(f"run {claims.run} is not waiting here any more: `millrace {verb} {claims.run}`",
                           run=claims.run)
        state = link_state(claims.path, claims.attempt, status)
        if state not in (WAIT, APPLY):
            raise Gone(state, run=claims.run, step=claims.path)

    def listen(self, run: str) -> None:
        """Accept approvals for `run` while this process runs it."""
        with self._lock:
            self._listening.add(run)

    def observe(self, run: str, status: RunStatus) -> None:
        """The run's latest state, which says which links still count."""
        with self._lock:
            self._runs[run] = status  # the planner never changes a state it returned: no copy needed

    def take_approval(self, run: str, timeout: float | None) -> Approval | None:
        """The next approval queued for `run`'s current suspension, waiting up to `timeout` seconds
        (None: do not wait). Approvals for a suspension that has ended are dropped."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                queued = self._approvals.get(run) or []
                status = self._runs.get(run)
                while queued:
                    approval = queued.pop(0)
                    if status is None or link_state(approval.path, approval.attempt, status) == APPLY:
                        return approval
                self._arrived.clear()
            if deadline is None or time.monotonic() >= deadline:
                return None
            self._arrived.wait(deadline - time.monotonic())


def _checked(call: Callable[[], T]) -> T:
    try:
        return call()
    except (DataPathError, DataFileError) as problem:
        raise Refusal(str(problem)) from None


class LocalStepApi:
    """A LocalBackend served on 127.0.0.1 from a thread; the hooks the executor calls around a step."""

    def __init__(self, store: DataStore | None = None, *, max_body: int = DEFAULT_MAX_BODY) -> None:
        self.backend = LocalBackend(store or DataStore())
        self.server = StepApiServer(self.backend, max_body=max_body).start()

    @property
    def url(self) -> str:
        return self.server.url

    def __enter__(self) -> LocalStepApi:
        return self

    def __exit__(self, *exception: object) -> None:
        self.close()

    def close(self) -> None:
        self.server.close()

    def register_attempt(self, scope: StepScope, result_file: Path) -> dict[str, str]:
        """Expect a report for this attempt in `result_file`; the environment that lets the step send it."""
        self.backend.register(scope, result_file)
        return {API_URL_ENV: self.url, TOKEN_ENV: self.server.token(Claims(**scope.model_dump()))}

    def secrets(self) -> list[str]:
        """The values to mask in what steps print and raise (see runtime/redact.py)."""
        return self.backend.store.secrets()

    def release_attempt(self, scope: StepScope) -> None:
        """The attempt has ended: its token is worth nothing from now on."""
        self.backend.release(scope)
