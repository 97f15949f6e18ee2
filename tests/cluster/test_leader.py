"""Two operator replicas: one leads (holds the Lease), the other waits; killed
mid-step, the leader is replaced and no step runs twice."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from millrace.cluster.names import job_name

from .conftest import Operator, installed_operator
from .test_operator import flow_manifest, python_step, run_manifest, wait_phase

pytestmark = pytest.mark.cluster

LEASE = "millrace-leader"
SHORT = {"MILLRACE_LEASE_S": "4"}  # both replicas: the takeover waits one lease duration


@pytest.fixture
def replicas(kube: Any, helm: Any, namespace: str, tmp_path: Path) -> Iterator[tuple[Operator, Operator]]:
    with installed_operator(kube, helm, namespace, tmp_path) as first:
        first.stop()
        first.start(**SHORT)
        second = Operator(kube, namespace, tmp_path / "second.log", first.kubeconfig)
        second.port = first.port  # one Service address for the step API, as pods of a Deployment have
        try:
            yield first, second
        finally:
            second.stop()
            if second.log.exists():
                print("second replica:", second.log.read_text(errors="replace")[-3000:])


def _holder(kube: Any, namespace: str) -> str | None:
    return ((kube.get("lease", LEASE, namespace) or {}).get("spec") or {}).get("holderIdentity")


def _first_leads_second_waits(kube: Any, namespace: str,
                              replicas: tuple[Operator, Operator]) -> tuple[Operator, Operator]:
    first, second = replicas
    kube.wait_for(lambda: _holder(kube, namespace) == first.pod_name, what="the first replica to lead")
    second.start(**SHORT)
    kube.wait_for(lambda: "waiting to lead" in second.log.read_text(errors="replace"), what="the second to wait")
    return first, second


def test_killing_the_leader_mid_step_hands_over_and_the_step_runs_once(
        kube: Any, namespace: str, replicas: tuple[Operator, Operator]) -> None:
    first, second = _first_leads_second_waits(kube, namespace, replicas)
    # The step appends to the run's shared folder: a second start of it would leave two lines.
    work = python_step("work", "import time\n\ndef main():\n    open('shared/log', 'a').write('ran\\n')\n"
                               "    time.sleep(3)\n    return 1\n")
    count = python_step("count", "def main(x):\n    return open('shared/log').read().split()\n", x="results.work")
    kube.apply(flow_manifest("handover", [work, count], same_worker=True), namespace)
    kube.apply(run_manifest("handover-1", "handover"), namespace)
    kube.wait_for(lambda: any(p["status"].get("phase") == "Running"
                              for p in kube.list("pods", namespace, "millrace.dev/run=handover-1")), what="the step's pod")
    assert "leading (Lease" not in second.log.read_text(errors="replace")
    first.kill()
    kube.wait_for(lambda: _holder(kube, namespace) == second.pod_name, timeout=30, what="the second replica to lead")
    status = wait_phase(kube, namespace, "handover-1")
    assert status["phase"] == "Succeeded", status
    assert status["result"] == ["ran"]
    jobs = sorted(j["metadata"]["name"] for j in kube.list("jobs", namespace, "millrace.dev/run=handover-1"))
    assert jobs == sorted([job_name("handover-1", "work", 1), job_name("handover-1", "count", 1)])
    assert [len(kube.list("pods", namespace, f"job-name={name}")) for name in jobs] == [1, 1]
    assert kube.get("lease", LEASE, namespace)["spec"]["leaseTransitions"] >= 1


def test_a_stopped_leader_frees_the_lease_for_the_other_at_once(
        kube: Any, namespace: str, replicas: tuple[Operator, Operator]) -> None:
    first, second = _first_leads_second_waits(kube, namespace, replicas)
    kube.apply(flow_manifest("seven", [python_step("a", "def main():\n    return 7\n")]), namespace)
    kube.apply(run_manifest("before-1", "seven"), namespace)
    assert wait_phase(kube, namespace, "before-1")["result"] == 7
    first.stop()
    kube.wait_for(lambda: _holder(kube, namespace) == second.pod_name, timeout=3, what="the second to lead before the Lease expires")
    kube.apply(run_manifest("after-1", "seven"), namespace)
    assert wait_phase(kube, namespace, "after-1")["result"] == 7


def test_a_leader_stopped_while_it_starts_frees_the_lease(
        kube: Any, namespace: str, replicas: tuple[Operator, Operator]) -> None:
    first, _ = replicas
    first.stop()
    kube.wait_for(lambda: _holder(kube, namespace) is None, timeout=10, what="the Lease to be freed by a clean stop")
    first.log.write_bytes(b"")
    first.start(**SHORT)
    # SIGTERM as soon as it leads: it is still starting (servers, kopf), before kopf handles signals.
    deadline = time.monotonic() + 60
    while "leading (Lease" not in first.log.read_text(errors="replace"):
        assert time.monotonic() < deadline, first.log.read_text(errors="replace")[-2000:]
        time.sleep(0.01)
    first.stop()
    assert first.process is not None and first.process.returncode is not None
    assert _holder(kube, namespace) is None, first.log.read_text(errors="replace")[-2000:]
