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
    kube.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
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



def _module(**value) -> dict:
    return {"id": "a", "value": {"type": "rawscript", "language": "bash", "content": "echo 1", **value}}


# What the CRDs' own rules refuse, with no webhook (the crds fixture installs none, and the messages
# are the apiserver's): a change to the example flow, and what the message must hold.
REFUSED_FLOWS = [
    (lambda f: f["spec"]["value"]["modules"].append({"id": "a/b", "value": {"type": "identity"}}),
     ["spec.value.modules[5].id", "should match '^[^/]+$'"]),
    (lambda f: f["spec"]["value"]["modules"].append({"id": "", "value": {"type": "identity"}}),
     ["spec.value.modules[5].id", "at least 1 chars long"]),
    (lambda f: f["spec"]["value"]["modules"].append({"id": "x", "value": {"type": "rawscript", "content": "echo"}}),
     ["spec.value.modules[5].value", "type rawscript needs language"]),
    (lambda f: f["spec"]["value"]["modules"].append({"id": "x", "value": {"type": "forloopflow", "modules": []}}),
     ["spec.value.modules[5].value", "type forloopflow needs modules and iterator"]),
    (lambda f: f["spec"]["value"]["modules"].append({"id": "x", "value": {"type": "teleport"}}),
     ["spec.value.modules[5].value.type", "Unsupported value: \"teleport\""]),
    (lambda f: f["spec"]["value"]["modules"][0]["value"]["input_transforms"].update(name={"type": "javascript"}),
     ["spec.value.modules[0].value.input_transforms[name]", "type javascript needs expr"]),
    (lambda f: f["spec"].update(schedule={"cron": "every day"}), ["spec.schedule.cron", "should match"]),
    (lambda f: f["spec"].update(schedule={"cron": "0 6 * *"}), ["spec.schedule.cron", "should match"]),
    (lambda f: f["spec"].update(schedule={"cron": "@fortnightly"}), ["spec.schedule.cron", "should match"]),
    (lambda f: f["spec"].update(schedule={"cron": "0 6 * * *", "concurrencyPolicy": "Sometimes"}),
     ["spec.schedule.concurrencyPolicy", "Unsupported value"]),
    (lambda f: f["spec"].pop("value"), ["spec.value: Required value"]),
]


@pytest.mark.parametrize(("change", "needles"), REFUSED_FLOWS, ids=[
    "id-with-slash", "empty-id", "rawscript-without-language", "loop-without-iterator", "unknown-type",
    "javascript-without-expr", "cron-words", "cron-four-fields", "cron-unknown-shorthand", "concurrency-enum",
    "no-value"])
def test_the_apiserver_refuses_an_obviously_invalid_flow_without_the_webhook(kube, crds, namespace, change,
                                                                               needles) -> None:
    flow = _example_flow()
    change(flow)
    proc = kube.apply(flow, namespace, check=False)
    assert proc.returncode != 0, "the apiserver accepted it"
    assert all(n in proc.stderr for n in needles), proc.stderr


@pytest.mark.parametrize("cron", ["0 6 * * *", "*/5 * * * * *", "@daily", "@Hourly", "0  6 * * 1-5"])
def test_the_apiserver_accepts_the_cron_shapes_millrace_reads(kube, crds, namespace, cron: str) -> None:
    flow = _example_flow()
    flow["spec"]["schedule"] = {"cron": cron, "suspend": True}
    kube.apply(flow, namespace)


@pytest.mark.parametrize(("spec", "accepted"), [
    ({"flowRef": {"name": "hello-flow"}}, True),
    ({"flow": {"value": {"modules": [_module()]}}}, True),
    ({}, False),
    ({"flowRef": {"name": "hello-flow"}, "flow": {"value": {"modules": [_module()]}}}, False),
    ({"flowRef": {"name": ""}}, False),
], ids=["flow-ref", "inline", "neither", "both", "empty-name"])
def test_a_flowrun_names_its_flow_once(kube, crds, namespace, spec: dict, accepted: bool) -> None:
    run = {"apiVersion": "millrace.dev/v1alpha1", "kind": "FlowRun", "metadata": {"name": "r"}, "spec": spec}
    proc = kube.apply(run, namespace, check=False)
    assert (proc.returncode == 0) == accepted, proc.stderr
    if not accepted and "flowRef" in spec and "flow" in spec or not spec:
        assert "set exactly one of spec.flowRef (a Flow of this namespace) and spec.flow" in proc.stderr, proc.stderr

def test_printer_columns_and_category(kube, crds, namespace) -> None:
    kube.apply(_example_flow(), namespace)
    run = {"apiVersion": "millrace.dev/v1alpha1", "kind": "FlowRun", "metadata": {"name": "hello-1"},
           "spec": {"flowRef": {"name": "hello-flow"}, "args": {"name": "world"}}}
    kube.apply(run, namespace)
    # The status subresource: only a status write sets these.
    status = {"status": {"phase": "Running", "flow": "hello-flow", "currentStep": "shout",
                         "startTime": "2026-01-02T03:04:05Z", "duration": "12s"}}
    kube.kubectl("patch", "flowrun", "hello-1", "-n", namespace, "--subresource=status", "--type=merge",
                 "-p", json.dumps(status))
    out = kube.kubectl("get", "fr", "-n", namespace).stdout.splitlines()
    header = out[0].split()
    assert header[:8] == ["NAME", "FLOW", "PHASE", "STEP", "STARTED", "DURATION", "ERROR", "AGE"], out
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
