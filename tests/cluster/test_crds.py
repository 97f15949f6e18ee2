"""The generated CRDs against the real apiserver: structural, validating, native in kubectl."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]
CRDS = ("flows.millrace.dev", "flowruns.millrace.dev")


def install_crds(kube) -> None:
    """Apply crds/ as a user would and wait until both are Established."""
    kube.kubectl("apply", "-f", str(REPO / "crds"))
    for name in CRDS:
        # Polled rather than `kubectl wait`, which fails at once while a new CRD has no conditions yet.
        def established(name: str = name) -> bool:
            conditions = ((kube.get("crd", name) or {}).get("status") or {}).get("conditions") or []
            return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

        kube.wait_for(established, 60, f"CRD {name} Established")


@pytest.fixture
def crds(kube) -> None:
    install_crds(kube)


def _example_flow() -> dict:
    return yaml.safe_load((REPO / "examples" / "hello-flow.yaml").read_text())


def test_crds_are_accepted_as_structural(kube, crds) -> None:
    for name in CRDS:
        crd = kube.get("crd", name)
        conditions = {c["type"]: c for c in crd["status"]["conditions"]}
        assert conditions["Established"]["status"] == "True"
        assert conditions.get("NonStructuralSchema", {}).get("status") != "True", conditions


def test_example_flow_is_stored_as_applied(kube, crds, namespace) -> None:
    flow = _example_flow()
    kube.apply(flow, namespace)
    stored = kube.get("flow", "hello-flow", namespace)
    # Nothing pruned and nothing defaulted: the stored spec is the OpenFlow document applied.
    assert stored["spec"] == flow["spec"]


def test_unknown_openflow_fields_are_kept_for_validation(kube, crds, namespace) -> None:
    flow = _example_flow()
    flow["spec"]["value"]["modules"][0]["value"]["some_future_option"] = {"x": 1}
    kube.apply(flow, namespace)
    stored = kube.get("flow", "hello-flow", namespace)
    assert stored["spec"]["value"]["modules"][0]["value"]["some_future_option"] == {"x": 1}


def test_wrong_types_are_rejected_by_the_apiserver(kube, crds, namespace) -> None:
    flow = _example_flow()
    flow["spec"]["value"]["modules"] = "x"
    proc = kube.apply(flow, namespace, check=False)
    assert proc.returncode != 0
    assert "spec.value.modules" in proc.stderr and "array" in proc.stderr, proc.stderr

    run = {"apiVersion": "millrace.dev/v1alpha1", "kind": "FlowRun", "metadata": {"name": "r"},
           "spec": {"flowRef": {"name": "hello-flow"}, "args": {"name": "x"}, "cancel": "yes"}}
    proc = kube.apply(run, namespace, check=False)
    assert proc.returncode != 0 and "spec.cancel" in proc.stderr, proc.stderr


def test_printer_columns_and_category(kube, crds, namespace) -> None:
    kube.apply(_example_flow(), namespace)
    run = {"apiVersion": "millrace.dev/v1alpha1", "kind": "FlowRun", "metadata": {"name": "hello-1"},
           "spec": {"flowRef": {"name": "hello-flow"}, "args": {"name": "world"}}}
    kube.apply(run, namespace)
    # The status subresource: only a status write sets these.
    status = {"status": {"phase": "Running", "currentStep": "shout", "startTime": "2026-01-02T03:04:05Z",
                         "duration": "12s"}}
    kube.kubectl("patch", "flowrun", "hello-1", "-n", namespace, "--subresource=status", "--type=merge",
                 "-p", json.dumps(status))
    out = kube.kubectl("get", "fr", "-n", namespace).stdout.splitlines()
    header = out[0].split()
    assert header[:6] == ["NAME", "FLOW", "PHASE", "STEP", "STARTED", "DURATION"], out
    row = out[1].split()
    assert row[:5] == ["hello-1", "hello-flow", "Running", "shout", row[4]] and row[5] == "12s", out
    assert row[4].endswith("d") or row[4].endswith("y"), out  # a date column shows an age

    flows = kube.kubectl("get", "fl", "-n", namespace).stdout
    assert flows.splitlines()[0].split()[:8] == ["NAME", "READY", "SCHEDULE", "LAST", "RUN", "OUTCOME", "NEXT", "RUN"], flows

    listed = kube.kubectl("get", "millrace", "-n", namespace, "-o", "name").stdout.split()
    assert sorted(listed) == ["flow.millrace.dev/hello-flow", "flowrun.millrace.dev/hello-1"]


def test_status_is_a_subresource(kube, crds, namespace) -> None:
    kube.apply(_example_flow(), namespace)
    kube.kubectl("patch", "flow", "hello-flow", "-n", namespace, "--type=merge",
                 "-p", json.dumps({"status": {"lastRun": "ignored"}}))
    stored = kube.get("flow", "hello-flow", namespace)
    assert (stored.get("status") or {}).get("lastRun") is None
