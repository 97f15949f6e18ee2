"""What kubectl shows of Flows and FlowRuns, with the real kubectl against the real control plane:
printer columns, RFC 3339 times, labels that select, `kubectl explain`, Events in order."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from millrace.model.times import format_time

from .conftest import Operator, installed_operator, millrace_cli
from .test_crds import install_crds
from .test_operator import approval_flow, flow_manifest, python_step, run_manifest, wait_phase

pytestmark = pytest.mark.cluster

MICRO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


@pytest.fixture
def operator(kube: Any, helm: Any, namespace: str, tmp_path: Path) -> Iterator[Operator]:
    with installed_operator(kube, helm, namespace, tmp_path) as op:
        yield op


def columns(kube: Any, kind: str, namespace: str, name: str, *extra: str) -> dict[str, str]:
    """The printer columns of one object, by header (kubectl pads columns with at least three spaces;
    a header may have two words: LAST RUN)."""
    lines = kube.kubectl("get", kind, name, "-n", namespace, *extra).stdout.splitlines()
    header, row = lines[0], lines[1]
    starts = [0] + [m.end() for m in re.finditer(r"\S {3,}(?=\S)", header)]
    cells = [row[a:b].strip() for a, b in zip(starts, [*starts[1:], None])]
    titles = [header[a:b].strip() for a, b in zip(starts, [*starts[1:], None])]
    return dict(zip(titles, cells))


def test_a_run_as_kubectl_shows_it_from_pending_to_its_end(kube: Any, namespace: str, operator: Operator) -> None:
    # Waiting for an args Secret that never comes: taken up, so Pending, and no further.
    waiting = {"apiVersion": "millrace.dev/v1alpha1", "kind": "FlowRun", "metadata": {"name": "waits"},
               "spec": {"flow": {"summary": "inline one", "value": {"modules": []}}, "argsSecret": "not-there"}}
    kube.apply(waiting, namespace)
    pending = wait_phase(kube, namespace, "waits", phases=("Pending",))
    assert pending["flow"] == "(inline) inline one" and "startedAt" not in pending
    assert {c["type"]: c["status"] for c in pending["conditions"]}["Reconciling"] == "True"
    shown = columns(kube, "fr", namespace, "waits")
    assert shown["PHASE"] == "Pending" and shown["FLOW"] == "(inline) inline one" and shown["DURATION"] == ""

    kube.apply(approval_flow("ask"), namespace)
    kube.apply(run_manifest("ask-1", "ask"), namespace)
    status = wait_phase(kube, namespace, "ask-1", phases=("Suspended",))
    # Every time the status holds is RFC 3339: MicroTime for the run state, Time for the columns and conditions.
    assert MICRO_TIME.match(status["startedAt"]), status
    ask = status["steps"]["ask"]
    assert MICRO_TIME.match(ask["startedAt"]) and MICRO_TIME.match(ask["finishedAt"]) and MICRO_TIME.match(ask["awaitingSince"])
    assert TIME.match(status["startTime"]) and all(TIME.match(c["lastTransitionTime"]) for c in status["conditions"])
    shown = columns(kube, "fr", namespace, "ask-1")
    assert shown["PHASE"] == "Suspended" and shown["STEP"] == "ask" and shown["DURATION"] == "", shown
    assert re.fullmatch(r"\d+s", shown["STARTED"]), shown  # a date column: kubectl shows the time since
    flow = columns(kube, "fl", namespace, "ask")
    assert flow["LAST RUN"] == "ask-1" and flow["OUTCOME"] == "Suspended", flow

    # A newer run takes LAST RUN; the older one ending later does not take it back.
    kube.apply(run_manifest("ask-2", "ask"), namespace)
    wait_phase(kube, namespace, "ask-2", phases=("Suspended",))
    kube.wait_for(lambda: columns(kube, "fl", namespace, "ask")["LAST RUN"] == "ask-2", what="the newer run shown")
    done = millrace_cli(kube, "cancel", "ask-1", "-n", namespace, "--reason", "enough", "--by", "ann")
    assert done.returncode == 0, done.stderr
    status = wait_phase(kube, namespace, "ask-1")
    assert status["phase"] == "Cancelled" and MICRO_TIME.match(status["finishedAt"])
    shown = columns(kube, "fr", namespace, "ask-1", "-o", "wide")
    assert shown["STEP"] == "" and re.fullmatch(r"[\d.]+s|\d+m\d+s", shown["DURATION"]), shown
    assert shown["ERROR"] == "Cancelled" and "enough" in shown["MESSAGE"], shown
    flow = columns(kube, "fl", namespace, "ask")
    assert flow["LAST RUN"] == "ask-2" and flow["OUTCOME"] == "Suspended", flow
    assert "could not show run" not in operator.log.read_text()  # the older run's phase was left out, quietly
    kube.kubectl("patch", "flowrun", "ask-2", "-n", namespace, "--type=merge", "-p", '{"spec": {"cancel": true}}')
    wait_phase(kube, namespace, "ask-2")
    kube.wait_for(lambda: columns(kube, "fl", namespace, "ask")["OUTCOME"] == "Cancelled", what="the Flow's outcome")


def test_step_labels_select_a_steps_pods_by_its_id(kube: Any, namespace: str, operator: Operator) -> None:
    kube.apply(flow_manifest("labels", [
        python_step("short_name", "def main():\n    print('hello from short_name')\n    return 1\n"),
        python_step("boom", "def main():\n    raise ValueError('no good')\n"),
    ]), namespace)
    kube.apply(run_manifest("labels-1", "labels"), namespace)
    status = wait_phase(kube, namespace, "labels-1")
    assert status["phase"] == "Failed"
    pods = kube.kubectl("get", "pods", "-n", namespace, "-l", "millrace.dev/step=short_name,millrace.dev/run=labels-1",
                        "-o", "name").stdout.split()
    assert len(pods) == 1, pods
    logs = kube.kubectl("logs", "-n", namespace, "-l", "millrace.dev/step=short_name").stdout
    assert "hello from short_name" in logs, logs
    # Ended: no step shown; the Reason and Message of the failure are.
    shown = columns(kube, "fr", namespace, "labels-1", "-o", "wide")
    assert shown["STEP"] == "" and shown["ERROR"] == "ValueError" and "no good" in shown["MESSAGE"], shown
    assert columns(kube, "fl", namespace, "labels")["OUTCOME"] == "Failed"
    # Events in the order they happened, the run's last, naming the run as a run. The run's Event is
    # posted once its status is written: wait for it.
    def listed() -> list[dict[str, Any]] | None:
        found = json.loads(kube.kubectl("get", "events", "-n", namespace, "--field-selector",
                                        "involvedObject.name=labels-1", "-o", "json").stdout)["items"]
        return found if any(e["reason"] == "RunFailed" for e in found) else None
    events = kube.wait_for(listed, what="the run's Event")
    ordered = sorted(events, key=lambda e: e["eventTime"])
    assert [e["reason"] for e in ordered] == ["StepSucceeded", "StepFailed", "RunFailed"], ordered
    assert ordered[-1]["message"].startswith("run labels-1 failed: ValueError: no good"), ordered[-1]
    assert all(MICRO_TIME.match(e["eventTime"]) and e["reportingComponent"] == "millrace-operator" for e in events)
    shown_events = kube.kubectl("events", "-n", namespace, "--for", "flowrun/labels-1").stdout.splitlines()
    reasons = [r for line in shown_events for r in ("StepSucceeded", "StepFailed", "RunFailed") if r in line]
    assert reasons == ["StepSucceeded", "StepFailed", "RunFailed"], shown_events


def test_a_status_written_with_epoch_seconds_is_read_and_rewritten_as_rfc3339(kube: Any, namespace: str,
                                                                              operator: Operator) -> None:
    """An operator upgrade in the middle of a run: the status an older operator wrote holds epoch floats."""
    kube.apply(approval_flow("old"), namespace)
    kube.apply(run_manifest("old-1", "old"), namespace)
    status = wait_phase(kube, namespace, "old-1", phases=("Suspended",))
    started = round(time.time() - 5) + 0.25
    old = {"status": {"startedAt": started, "steps": {"ask": {"startedAt": started, "finishedAt": started + 1,
                                                              "awaitingSince": started + 1}}}}
    kube.kubectl("patch", "flowrun", "old-1", "-n", namespace, "--subresource=status", "--type=merge", "-p", json.dumps(old))
    assert kube.get("flowrun", "old-1", namespace)["status"]["startedAt"] == started
    done = millrace_cli(kube, "resume", "old-1", "-n", namespace, "--payload", "{}", "--approver", "ann")
    assert done.returncode == 0, done.stderr
    status = wait_phase(kube, namespace, "old-1")
    assert status["phase"] == "Succeeded", status
    assert status["startedAt"] == format_time(started) and status["startedAt"].endswith(".250000Z"), status
    assert status["steps"]["ask"]["finishedAt"] == format_time(started + 1)


def test_kubectl_explain_shows_the_models_descriptions(kube: Any) -> None:
    install_crds(kube)

    def explain(path: str) -> str:
        return kube.kubectl("explain", path).stdout

    assert "The Flow of this namespace to run" in explain("flowrun.spec.flowRef")
    assert "The flow input, checked against the flow's schema" in explain("flowrun.spec.args")
    retry = explain("flow.spec.value.modules.retry.constant")
    assert "Retries after a failure" in retry and "Wait before each retry" in retry
    kinds = explain("flow.spec.value.modules.value.type")
    assert "branchone: the first branch" in kinds and "rawscript: a script written inline" in kinds
    assert "Seconds to wait for the approvals" in explain("flow.spec.value.modules.suspend.timeout")
    assert "concurrencyPolicy" in explain("flow.spec.schedule") and "wait (Forbid)" in explain("flow.spec.schedule.concurrencyPolicy")
