"""Traces from the operator against the real control plane: a FlowRun's traceparent annotation,
TRACEPARENT in step pods, run and step spans received over OTLP/HTTP by a receiver on 127.0.0.1."""

from __future__ import annotations

import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from millrace.telemetry.context import parse_traceparent
from unit.otlp_receiver import Receiver

from .conftest import Operator, installed_operator
from .test_operator import flow_manifest, python_step, run_manifest, wait_phase

pytestmark = pytest.mark.cluster

PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
ANNOTATION = "millrace.dev/traceparent"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


@pytest.fixture
def operator(kube: Any, helm: Any, namespace: str, tmp_path: Path, receiver: Receiver) -> Iterator[Operator]:
    with installed_operator(kube, helm, namespace, tmp_path) as op:
        op.stop()
        op.start(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url, OTEL_SERVICE_NAME="millrace-test")
        yield op


def test_run_and_step_spans_hang_under_the_given_traceparent_and_steps_see_theirs(
        kube: Any, namespace: str, operator: Operator, receiver: Receiver) -> None:
    kube.apply(flow_manifest("f-t-inner", [python_step("deep", "def main():\n    return 1\n")]), namespace)
    kube.apply(flow_manifest("traced", [
        python_step("first", "import os\ndef main():\n    return os.environ.get('TRACEPARENT')\n"),
        python_step("second", "import os\ndef main():\n    return os.environ.get('TRACEPARENT')\n"),
        {"id": "inner", "value": {"type": "flow", "path": "f/t/inner", "input_transforms": {}}},
    ]), namespace)
    run = run_manifest("traced-1", "traced")
    run["metadata"]["annotations"] = {ANNOTATION: PARENT}
    kube.apply(run, namespace)
    status = wait_phase(kube, namespace, "traced-1")
    assert status["phase"] == "Succeeded", status
    seen = {step: parse_traceparent(status["steps"][step]["result"]) for step in ("first", "second")}
    assert {ctx.trace_id for ctx in seen.values()} == {"4bf92f3577b34da6a3ce929d0e0e4736"}
    assert kube.get("flowrun", "traced-1", namespace)["metadata"]["annotations"][ANNOTATION] == PARENT  # left as given

    def spans() -> dict[str, dict[str, Any]] | None:
        found = {span["name"]: span for span in receiver.spans()}
        return found if {"run traced", "step first", "step second", "run f/t/inner", "step deep"} <= set(found) else None

    found = kube.wait_for(spans, timeout=30, what="the run's spans at the receiver")
    run_span = found["run traced"]
    assert run_span["traceId"] == "4bf92f3577b34da6a3ce929d0e0e4736" and run_span["parentSpanId"] == "00f067aa0ba902b7"
    for step in ("first", "second"):
        span = found[f"step {step}"]
        # The span a step's pod was told is its own is the one exported, under the run's.
        assert (span["traceId"], span["spanId"], span["parentSpanId"]) == (seen[step].trace_id, seen[step].span_id, run_span["spanId"])
        assert span["status"] == {"code": 1}
        assert int(span["startTimeUnixNano"]) <= int(span["endTimeUnixNano"])
        assert {"key": "millrace.step.path", "value": {"stringValue": step}} in span["attributes"]
    # The inner flow's run is a child of the parent run's span, in the same trace.
    child, deep = found["run f/t/inner"], found["step deep"]
    assert (child["traceId"], child["parentSpanId"]) == (run_span["traceId"], run_span["spanId"])
    assert (deep["traceId"], deep["parentSpanId"]) == (run_span["traceId"], child["spanId"])
    assert {r[2]["resourceSpans"][0]["resource"]["attributes"][0]["value"]["stringValue"] for r in receiver.requests} == {"millrace-test"}


def test_a_run_without_a_traceparent_gets_one_written_and_its_spans_root_that_trace(
        kube: Any, namespace: str, operator: Operator, receiver: Receiver) -> None:
    kube.apply(flow_manifest("plain", [python_step("boom", "def main():\n    raise ValueError('no')\n")]), namespace)
    kube.apply(run_manifest("plain-1", "plain"), namespace)
    assert wait_phase(kube, namespace, "plain-1")["phase"] == "Failed"
    written = parse_traceparent(kube.get("flowrun", "plain-1", namespace)["metadata"]["annotations"][ANNOTATION])

    def spans() -> dict[str, dict[str, Any]] | None:
        found = {span["name"]: span for span in receiver.spans() if span["traceId"] == written.trace_id}
        return found if {"run plain", "step boom"} <= set(found) else None

    found = kube.wait_for(spans, timeout=30, what="the run's spans at the receiver")
    assert found["run plain"]["spanId"] == written.span_id and "parentSpanId" not in found["run plain"]
    assert found["run plain"]["status"]["code"] == 2 and found["step boom"]["status"]["code"] == 2
    assert found["step boom"]["parentSpanId"] == written.span_id
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{operator.metrics_port}/metrics").read().decode()
    samples = {(s.name, s.labels.get("outcome")): s.value for f in text_string_to_metric_families(metrics)
               if f.name.startswith("millrace_") for s in f.samples}
    assert samples[("millrace_step_attempts_total", "failed")] == 1 and samples[("millrace_runs_total", "failed")] == 1
    assert samples[("millrace_run_duration_seconds_count", "failed")] == 1


def test_a_restarted_run_has_spans_only_for_the_steps_it_ran(
        kube: Any, namespace: str, operator: Operator, receiver: Receiver) -> None:
    kube.apply(flow_manifest("two", [python_step("a", "def main():\n    return 1\n"),
                                     python_step("b", "def main():\n    return 2\n")]), namespace)
    kube.apply(run_manifest("two-1", "two"), namespace)
    assert wait_phase(kube, namespace, "two-1")["phase"] == "Succeeded"
    again = run_manifest("two-2", "two")
    again["spec"] = {"flowRef": {"name": "two"}, "restartFrom": {"run": "two-1", "step": "b"}}
    kube.apply(again, namespace)
    assert wait_phase(kube, namespace, "two-2")["phase"] == "Succeeded"
    trace = parse_traceparent(kube.get("flowrun", "two-2", namespace)["metadata"]["annotations"][ANNOTATION]).trace_id

    def spans() -> list[str] | None:
        names = sorted(span["name"] for span in receiver.spans() if span["traceId"] == trace)
        return names if "run two" in names else None

    # Step a was copied from two-1: it did not run again, so it has no span (nor a count) here.
    assert kube.wait_for(spans, timeout=30, what="the restarted run's spans") == ["run two", "step b"]
    events = kube.kubectl("get", "events", "-n", namespace, "--field-selector", "involvedObject.name=two-2",
                          "-o", "jsonpath={.items[*].message}").stdout
    assert "step a" not in events, events
