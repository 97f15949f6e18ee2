"""The conformance cases: one small flow per rule of Windmill's flow engine, with
the outcome Windmill gives it, read from tests/conformance/cases/*.yaml.

Both shells run the same cases (test_local.py, test_cluster.py) and compare
what they get with `expect` through `mismatches`, so a case states one fact
about Windmill and checks it twice.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, model_validator

CASES = Path(__file__).resolve().parent / "cases"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

Status = Literal["succeeded", "failed", "suspended", "cancelled"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Resume(Strict):
    payload: Any = None
    approver: str = "conformance"


class Cancel(Strict):
    by: str = "conformance"
    reason: str = "disapproved"


class Disapprove(Strict):
    by: str = "conformance"


class Action(Strict):
    """What is done to a run once it is suspended: exactly one of resume, disapprove or cancel."""

    resume: Resume | None = None
    disapprove: Disapprove | None = None
    cancel: Cancel | None = None

    @model_validator(mode="after")
    def one_of(self) -> Action:
        if sum(a is not None for a in (self.resume, self.disapprove, self.cancel)) != 1:
            raise ValueError("an action is exactly one of `resume`, `disapprove` or `cancel`")
        return self


class Restart(Strict):
    """Once the first run ended: restart it from `step`, running `flow` (the flow as edited since, as
    Windmill restarts with a newer flow_version); the case's outcome is the restarted run's."""

    step: str
    flow: dict[str, Any]


class Expect(Strict):
    """The outcome Windmill gives. `result` is compared whole when it is given
    (null included); `result_contains` and `error` only on the keys they name;
    `error_contains` holds substrings of the error's fields."""

    status: Status
    result: Any = None
    result_contains: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    error_contains: dict[str, str] | None = None


class Case(Strict):
    name: str
    rule: str
    windmill: str                     # the Windmill function or test the expectation comes from
    flow: dict[str, Any] | None = None
    example: str | None = None        # a flow of examples/ instead of an inline one
    args: dict[str, Any] = {}
    actions: tuple[Action, ...] = ()
    restart: Restart | None = None
    expect: Expect

    @model_validator(mode="after")
    def one_flow(self) -> Case:
        if (self.flow is None) == (self.example is None):
            raise ValueError("a case has exactly one of `flow` or `example`")
        if self.restart is not None and (self.flow is None or self.actions):
            raise ValueError("a case that restarts has an inline `flow` and no `actions`")
        return self

    @property
    def example_path(self) -> Path:
        assert self.example is not None
        return EXAMPLES / f"{self.example}.yaml"

    @property
    def kube_name(self) -> str:
        """The Flow's name in the cluster: an example keeps its own, an inline flow is named after its case."""
        if self.example is not None:
            return str(yaml.safe_load(self.example_path.read_text(encoding="utf-8"))["metadata"]["name"])
        return re.sub(r"[^a-z0-9-]+", "-", self.name.lower())[:50].strip("-")

    def expects_result(self) -> bool:
        return "result" in self.expect.model_fields_set


class Outcome(BaseModel):
    """What a shell reports at the end of a case, in the same terms for both."""

    status: str
    result: Any = None
    error: dict[str, Any] | None = None
    run: str = ""                     # the run's id or name, for the actions that follow
    detail: str = ""                  # what the shell printed, to explain a mismatch


def load_case(path: Path) -> Case:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return Case.model_validate({"name": path.stem, **data})


def all_cases() -> list[Case]:
    return [load_case(path) for path in sorted(CASES.glob("*.yaml"))]


def _contains(actual: Any, expected: Any) -> bool:
    """Every key of `expected` is in `actual` with a value that contains it in turn."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(k in actual and _contains(actual[k], v) for k, v in expected.items())
    return bool(actual == expected)


def mismatches(case: Case, outcome: Outcome) -> list[str]:
    """How `outcome` differs from what Windmill gives; empty when it conforms."""
    expect = case.expect
    found: list[str] = []
    if outcome.status != expect.status:
        found.append(f"status {outcome.status!r}, Windmill: {expect.status!r}")
    if case.expects_result() and outcome.result != expect.result:
        found.append(f"result {json.dumps(outcome.result)}, Windmill: {json.dumps(expect.result)}")
    if expect.result_contains is not None and not _contains(outcome.result, expect.result_contains):
        found.append(f"result {json.dumps(outcome.result)} lacks {json.dumps(expect.result_contains)}")
    error = outcome.error or {}
    for key, value in (expect.error or {}).items():
        if error.get(key) != value:
            found.append(f"error.{key} {json.dumps(error.get(key))}, Windmill: {json.dumps(value)}")
    for key, part in (expect.error_contains or {}).items():
        if part not in str(error.get(key, "")):
            found.append(f"error.{key} {json.dumps(error.get(key))} does not contain {part!r}")
    return found


def report(case: Case, outcome: Outcome) -> str:
    """The assertion message of a case that does not conform."""
    lines = [f"{case.name}: {case.rule}", f"  Windmill: {case.windmill}"]
    lines += [f"  - {m}" for m in mismatches(case, outcome)]
    if outcome.detail:
        lines.append(f"  shell said: {outcome.detail[-2000:]}")
    return "\n".join(lines)
