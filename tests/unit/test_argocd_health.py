"""The Argo CD health checks of examples/gitops/argocd/health, run by a real Lua interpreter.

Argo CD runs a health check as a Lua chunk with the object as the global `obj`,
and reads the table it returns. The objects here are built by the operator's own
code: a FlowRun's status by `status.decorate` (what the reconciler writes), a
Flow's by `admission.flow_ready_condition` (what `flow_changed` writes).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from millrace.cluster.admission import flow_ready_condition
from millrace.cluster.status import decorate, flow_conditions
from millrace.expressions import Sandbox
from millrace.model.resources import FlowRunStatus
from millrace.model.run import ErrorInfo, StepState

HEALTH = Path(__file__).resolve().parents[2] / "examples" / "gitops" / "argocd" / "health"
NOW = 1_750_000_000.0


def _lua(value: Any) -> str:
    """A JSON value as a Lua table constructor (JSON null as nil: Argo CD's objects have no nulls either)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"[{json.dumps(k)}] = {_lua(v)}" for k, v in value.items() if v is not None) + "}"
    if isinstance(value, list):
        return "{" + ", ".join(_lua(v) for v in value) + "}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(value, ensure_ascii=False)


def health(check: str, obj: dict[str, Any]) -> tuple[str, str]:
    lua = shutil.which("lua5.4")
    if lua is None:
        pytest.fail("no lua5.4: `make lua` (scripts/install_lua.sh) installs it", pytrace=False)
    script = (HEALTH / check).read_text()
    program = (f"obj = {_lua(obj)}\nlocal function check()\n{script}\nend\n"
               "local hs = check()\nio.write(hs.status, '\\t', hs.message or '')\n")
    proc = subprocess.run([lua, "-"], input=program, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    status, _, message = proc.stdout.partition("\t")
    return status, message


def _run(status: FlowRunStatus | None, generation: int = 1, observed: int | None = None) -> dict[str, Any]:
    obj: dict[str, Any] = {"apiVersion": "millrace.dev/v1alpha1", "kind": "FlowRun",
                           "metadata": {"name": "r", "namespace": "flows", "generation": generation}}
    if status is not None:
        written = decorate(status, obj, NOW).model_dump(mode="json", by_alias=True, exclude_none=True)
        if observed is not None:
            written["observedGeneration"] = observed
        obj["status"] = written
    return obj


RUNNING = FlowRunStatus(phase="Running", started_at=NOW - 5,
                        steps={"fetch": StepState(type="rawscript", phase="Running", attempts=1)})
FAILED = FlowRunStatus(phase="Failed", started_at=NOW - 5, finished_at=NOW,
                       error=ErrorInfo(name="ExecutionErr", message="exit code 3", step_id="fetch"))


@pytest.mark.parametrize(("obj", "expected"), [
    (_run(None), ("Progressing", "waiting for the operator")),
    (_run(FlowRunStatus()), ("Progressing", "the run has not started")),
    (_run(RUNNING), ("Progressing", "running step fetch")),
    (_run(FlowRunStatus(phase="Suspended", started_at=NOW, suspended_step="approve")),
     ("Suspended", "waiting for an approval at step approve")),
    (_run(FlowRunStatus(phase="Succeeded", started_at=NOW - 5, finished_at=NOW, result=42)),
     ("Healthy", "the run succeeded")),
    (_run(FAILED), ("Degraded", "the run failed: ExecutionErr: exit code 3")),
    (_run(FlowRunStatus(phase="Cancelled", started_at=NOW - 5, finished_at=NOW)),
     ("Degraded", "the run was cancelled")),
    # spec.cancel set, not yet seen: the Succeeded of the earlier generation is not the answer.
    (_run(FlowRunStatus(phase="Succeeded"), generation=2, observed=1),
     ("Progressing", "the operator has not seen generation 2 yet")),
], ids=["no-status", "pending", "running", "suspended", "succeeded", "failed", "cancelled", "stale"])
def test_flowrun_health(obj: dict[str, Any], expected: tuple[str, str]) -> None:
    assert health("flowrun.lua", obj) == expected


VALID = {"summary": "s", "value": {"modules": [{"id": "a", "value": {
    "type": "rawscript", "language": "bash", "content": "echo 1"}}]}}
INVALID = {"summary": "s", "value": {"modules": [{"id": "a", "value": {
    "type": "rawscript", "language": "cobol", "content": "x"}}]}}


def _flow(spec: dict[str, Any], generation: int = 1, checked: bool = True, **status: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {"apiVersion": "millrace.dev/v1alpha1", "kind": "Flow",
                           "metadata": {"name": "f", "namespace": "flows", "generation": generation}, "spec": spec}
    if checked:
        with Sandbox() as sandbox:
            ready = flow_ready_condition("f", spec, 1, sandbox)
        made = flow_conditions([], ready, 1, "2025-06-15T00:00:00Z")
        obj["status"] = {"conditions": [c.model_dump(mode="json", by_alias=True, exclude_none=True) for c in made],
                         "observedGeneration": 1, **status}
    return obj


@pytest.mark.parametrize(("obj", "expected"), [
    (_flow(VALID, checked=False), ("Progressing", "waiting for the operator to check the flow")),
    (_flow(VALID), ("Healthy", "the flow passed validation")),
    (_flow(INVALID), ("Degraded", "flow 'f', step 'a', field 'value.language': language 'cobol' is not supported")),
    (_flow(VALID, generation=2), ("Progressing", "the operator has not checked generation 2 yet")),
    (_flow({**VALID, "schedule": {"cron": "0 * * * *", "suspend": True}}), ("Suspended", "its schedule is suspended")),
    (_flow(VALID, lastRun="f-1", lastRunPhase="Failed"), ("Degraded", "its last run f-1 failed")),
    (_flow(VALID, lastRun="f-1", lastRunPhase="Succeeded"), ("Healthy", "the flow passed validation")),
], ids=["unchecked", "ready", "invalid", "stale", "schedule-suspended", "last-run-failed", "last-run-succeeded"])
def test_flow_health(obj: dict[str, Any], expected: tuple[str, str]) -> None:
    status, message = health("flow.lua", obj)
    assert (status, message[:len(expected[1])]) == expected, message
