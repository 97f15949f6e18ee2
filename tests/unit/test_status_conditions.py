"""FlowRun conditions as Kubernetes tools read them: the kstatus conventions (Ready, Reconciling,
Stalled, with observedGeneration) and a Succeeded condition as Tekton and Knative runs have."""

from __future__ import annotations

from typing import Any

import pytest

from millrace.cluster.status import conditions, decorate
from millrace.model.resources import Condition, FlowRunStatus
from millrace.model.run import ErrorInfo

OBJ = {"metadata": {"name": "daily-1", "namespace": "flows", "generation": 2}}


def kstatus(obj: dict[str, Any], status: dict[str, Any]) -> str:
    """The kstatus rules for a custom resource with conditions (sigs.k8s.io/cli-utils kstatus):
    a status not observed for the current generation is in progress; a true Reconciling means in
    progress, a true Stalled failed; otherwise the resource is current."""
    if status.get("observedGeneration") != obj["metadata"]["generation"]:
        return "InProgress"
    found = {c["type"]: c["status"] for c in status.get("conditions") or []}
    if found.get("Reconciling") == "True":
        return "InProgress"
    if found.get("Stalled") == "True":
        return "Failed"
    return "Current"


def _written(phase: str, **extra: Any) -> dict[str, Any]:
    status = FlowRunStatus(phase=phase, started_at=100.0, **extra)  # type: ignore[arg-type]
    return decorate(status, OBJ, now=160.0).model_dump(mode="json", by_alias=True, exclude_none=True)


@pytest.mark.parametrize(("phase", "health", "succeeded", "ready"), [
    ("Pending", "InProgress", "Unknown", "False"),
    ("Running", "InProgress", "Unknown", "False"),
    ("Suspended", "InProgress", "Unknown", "False"),
    ("Succeeded", "Current", "True", "True"),
    ("Failed", "Failed", "False", "False"),
    ("Cancelled", "Failed", "False", "False"),
])
def test_each_phase_reads_as_kstatus_and_tekton_expect(phase: str, health: str, succeeded: str, ready: str) -> None:
    status = _written(phase)
    assert kstatus(OBJ, status) == health
    found = {c["type"]: c for c in status["conditions"]}
    assert set(found) == {"Ready", "Reconciling", "Stalled", "Succeeded"}
    assert (found["Succeeded"]["status"], found["Ready"]["status"]) == (succeeded, ready)
    assert all(c["reason"] == phase and c["observedGeneration"] == 2 for c in found.values())
    assert status["startTime"] == "1970-01-01T00:01:40Z"


def test_a_status_of_an_older_generation_is_in_progress() -> None:
    status = _written("Succeeded")
    assert kstatus({"metadata": {"generation": 3}}, status) == "InProgress"


def test_a_failed_run_says_why_in_every_condition() -> None:
    status = _written("Failed", error=ErrorInfo(name="StepError", message="boom", step_id="a"))
    assert {c["message"] for c in status["conditions"]} == {"StepError: boom"}


def test_transition_times_change_only_with_the_status_or_reason() -> None:
    first = conditions([], {"Ready": "False", "Stalled": "False"}, "Running", "", 1, "T1")
    again = conditions(first, {"Ready": "False", "Stalled": "False"}, "Running", "", 1, "T2")
    assert {c.last_transition_time for c in again} == {"T1"}
    done = conditions(again, {"Ready": "True", "Stalled": "False"}, "Succeeded", "", 1, "T3")
    assert {c.type: c.last_transition_time for c in done} == {"Ready": "T3", "Stalled": "T3"}
    kept = conditions([Condition(type="Other", status="True")], {"Ready": "True"}, "x", "", 1, "T4")
    assert [c.type for c in kept] == ["Other", "Ready"]


def test_the_old_finished_condition_is_dropped() -> None:
    old = FlowRunStatus(phase="Running", conditions=[Condition(type="Finished", status="False", reason="Running")])
    written = decorate(old, OBJ, now=1.0)
    assert "Finished" not in {c.type for c in written.conditions}


@pytest.mark.parametrize(("spec", "shown"), [
    ({"flowRef": {"name": "daily"}}, "daily"),
    ({"flow": {"summary": "Nightly export", "value": {"modules": []}}}, "(inline) Nightly export"),
    ({"flow": {"value": {"modules": []}}}, "(inline)"),
])
def test_the_flow_column_names_referenced_and_inline_flows(spec: dict[str, Any], shown: str) -> None:
    assert decorate(FlowRunStatus(), {**OBJ, "spec": spec}, now=1.0).flow == shown
