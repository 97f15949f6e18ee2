"""Trace context and spans: the traceparent rules, the spans a run's changes end, the OTLP/HTTP
JSON the exporter POSTs (to a real HTTP receiver on 127.0.0.1), the /metrics names."""

from __future__ import annotations

import re
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import prometheus_client
import pytest
from prometheus_client.parser import text_string_to_metric_families

from millrace.cluster import observe
from millrace.cluster.observe import Transition, ended, spans, transitions
from millrace.model.run import ErrorInfo, RunStatus, StepState
from millrace.telemetry.context import parse_traceparent, run_trace
from millrace.telemetry.otlp import Exporter, Span, settings_from_environment

from .otlp_receiver import Receiver

RUN = {"metadata": {"name": "r1", "namespace": "ns", "uid": "uid-1"}}
OPERATIONS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


def test_traceparent_is_parsed_as_the_w3c_spec_says() -> None:
    ctx = parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    assert (ctx.trace_id, ctx.span_id, ctx.sampled) == ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", True)
    assert ctx.traceparent == "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    for bad in ("", "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01", "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7"):
        with pytest.raises(ValueError, match="traceparent|invalid"):
            parse_traceparent(bad)


def test_a_run_without_a_traceparent_roots_a_trace_and_the_one_written_back_names_the_same_span() -> None:
    own = run_trace("uid-1", None)
    assert own.parent_span_id is None and re.fullmatch(r"[0-9a-f]{32}", own.run.trace_id)
    assert run_trace("uid-1", own.traceparent) == own  # the next pass reads what the operator wrote
    assert run_trace("uid-2", None).run.trace_id != own.run.trace_id


def test_a_given_traceparent_is_the_parent_of_the_run_span_and_steps_hang_under_the_run() -> None:
    given = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    trace = run_trace("uid-1", given)
    assert trace.run.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736" and trace.parent_span_id == "00f067aa0ba902b7"
    step = trace.step("loop/0/a", 2)
    assert step.trace_id == trace.run.trace_id and step.span_id not in (trace.run.span_id, trace.step("loop/0/a", 1).span_id)
    assert step.traceparent == f"00-{trace.run.trace_id}-{step.span_id}-01"


def test_spans_of_a_step_retried_then_succeeding_and_of_the_run() -> None:
    trace = run_trace("uid-1", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    first = StepState(type="rawscript", phase="Running", attempts=1, started_at=10)
    retrying = first.model_copy(update={"not_before": 12, "error": None})
    second = retrying.model_copy(update={"not_before": None, "attempts": 2})
    done = second.model_copy(update={"phase": "Succeeded", "finished_at": 15})
    starts: dict[tuple[str, str, int], float] = {}
    steps = [(RunStatus(phase="Running", steps={}), RunStatus(phase="Running", started_at=10, steps={"a": first}), 10.0),
             (RunStatus(phase="Running", steps={"a": first}), RunStatus(phase="Running", steps={"a": retrying}), 11.0),
             (RunStatus(phase="Running", steps={"a": retrying}), RunStatus(phase="Running", steps={"a": second}), 12.0),
             (RunStatus(phase="Running", steps={"a": second}),
              RunStatus(phase="Succeeded", started_at=10, finished_at=15, steps={"a": done}), 15.0)]
    made = [span for old, new, now in steps for span in spans(trace, RUN, "hello", ended("uid-1", transitions("r", old, new), now, starts))]
    assert [(s.name, s.start, s.end, s.status) for s in made] == [
        ("step a", 10, 11, "error"), ("step a", 12, 15, "ok"), ("run hello", 10, 15, "ok")]
    assert made[0].span_id == trace.step("a", 1).span_id and made[1].span_id == trace.step("a", 2).span_id
    assert {s.parent_span_id for s in made[:2]} == {trace.run.span_id} and made[2].parent_span_id == "00f067aa0ba902b7"
    assert made[1].attributes == {"millrace.run.name": "r1", "millrace.run.namespace": "ns", "millrace.flow": "hello",
                                  "millrace.step.path": "a", "millrace.step.attempt": 2}
    assert starts == {}


def test_a_later_attempt_not_seen_starting_is_not_timed_and_its_span_starts_with_its_step() -> None:
    """After an operator restart the start of an attempt after the first is not known."""
    trace = run_trace("uid-1", None)
    done = StepState(type="rawscript", phase="Succeeded", attempts=2, started_at=10, finished_at=20)
    before = StepState(type="rawscript", phase="Running", attempts=2, started_at=10)
    found = ended("uid-1", transitions("r", RunStatus(phase="Running", steps={"a": before}),
                                      RunStatus(phase="Running", steps={"a": done})), 21.0, {})
    assert [(e.change.reason, e.start, e.end) for e in found] == [("StepSucceeded", None, 20)]
    assert [(s.start, s.end) for s in spans(trace, RUN, "f", found)] == [(10, 20)]


def test_a_released_run_leaves_no_attempt_starts() -> None:
    starts = {("uid-1", "a", 2): 1.0, ("uid-2", "a", 2): 2.0}
    observe.forget_run("uid-1", starts)
    assert starts == {("uid-2", "a", 2): 2.0}


def test_settings_follow_the_opentelemetry_variables() -> None:
    assert settings_from_environment({}, "svc") is None
    assert settings_from_environment({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_TRACES_EXPORTER": "none"}, "svc") is None
    base = settings_from_environment({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318/", "OTEL_SERVICE_NAME": "ops",
                                      "OTEL_EXPORTER_OTLP_HEADERS": "a=1,b=x%20y", "OTEL_EXPORTER_OTLP_TIMEOUT": "2500"}, "svc")
    assert base is not None and (base.url, base.headers, base.timeout_s, base.service) == (
        "http://127.0.0.1:4318/v1/traces", {"a": "1", "b": "x y"}, 2.5, "ops")
    exact = settings_from_environment({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:9/t"}, "svc")
    assert exact is not None and exact.url == "http://127.0.0.1:9/t" and exact.service == "svc"
    with pytest.raises(ValueError, match="OTEL_EXPORTER_OTLP_PROTOCOL=grpc: millrace exports spans as http/json only"):
        settings_from_environment({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "svc")
    with pytest.raises(ValueError, match="OTEL_TRACES_EXPORTER=zipkin: millrace exports spans over OTLP only"):
        settings_from_environment({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_TRACES_EXPORTER": "zipkin"}, "svc")
    with pytest.raises(ValueError, match="key=value"):
        settings_from_environment({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_EXPORTER_OTLP_HEADERS": "nokey"}, "svc")


def test_the_exporter_posts_otlp_json_to_the_receiver(receiver: Receiver) -> None:
    settings = settings_from_environment({"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
                                          "OTEL_EXPORTER_OTLP_HEADERS": "x-tenant=t1"}, "millrace-operator")
    assert settings is not None
    exporter = Exporter(settings)
    trace = run_trace("uid-1", None)
    exporter.export([
        Span(trace_id=trace.run.trace_id, span_id=trace.step("a", 1).span_id, parent_span_id=trace.run.span_id,
             name="step a", start=100.5, end=101.25, attributes={"millrace.step.attempt": 1}, status="error", message="boom"),
        Span(trace_id=trace.run.trace_id, span_id=trace.run.span_id, name="run hello", start=100, end=102),
    ])
    exporter.close()
    path, headers, body = receiver.requests[0]
    assert path == "/v1/traces" and headers["content-type"] == "application/json" and headers["x-tenant"] == "t1"
    assert body["resourceSpans"][0]["resource"]["attributes"] == [{"key": "service.name", "value": {"stringValue": "millrace-operator"}}]
    step, run = receiver.spans()
    assert step == {"traceId": trace.run.trace_id, "spanId": trace.step("a", 1).span_id, "parentSpanId": trace.run.span_id,
                    "name": "step a", "kind": 1, "startTimeUnixNano": "100500000000", "endTimeUnixNano": "101250000000",
                    "attributes": [{"key": "millrace.step.attempt", "value": {"intValue": "1"}}],
                    "status": {"code": 2, "message": "boom"}}
    assert "parentSpanId" not in run and run["status"] == {"code": 1} and run["name"] == "run hello"


def test_an_unreachable_collector_loses_spans_not_the_operator() -> None:
    settings = settings_from_environment({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "OTEL_EXPORTER_OTLP_TIMEOUT": "500"}, "s")
    assert settings is not None
    exporter = Exporter(settings)
    exporter.export([Span(trace_id="1" * 32, span_id="2" * 16, name="run x", start=1, end=2)])
    started = time.monotonic()
    exporter.close()
    assert time.monotonic() - started < 10


def test_metrics_served_follow_the_prometheus_conventions() -> None:
    """Scraped over HTTP: every millrace series has the prefix, counters end in _total, durations
    are in seconds, and the only label is a fixed outcome (never a run, flow or step name)."""
    running = StepState(type="rawscript", phase="Running", attempts=1, started_at=1)
    changes = [*transitions("r", RunStatus(phase="Running", steps={"a": running}),
                            RunStatus(phase="Failed", started_at=1, finished_at=4,
                                      steps={"a": running.model_copy(update={"phase": "Failed", "finished_at": 3,
                                                                             "error": ErrorInfo(name="E", message="m")})})),
               Transition("StepRetrying", "step b failed attempt 1; retrying", True, step="b", attempt=1, started_at=1)]
    before = _scrape_samples()
    observe.record(_NoEvents(), RUN, changes, 5.0)
    server, thread = prometheus_client.start_http_server(0, addr="127.0.0.1")
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{server.server_address[1]}/metrics").read().decode()
    finally:
        server.shutdown()
    families = {f.name: f for f in text_string_to_metric_families(text) if f.name.startswith("millrace_")}
    assert {"millrace_runs", "millrace_run_duration_seconds", "millrace_step_attempts",
            "millrace_step_attempt_duration_seconds", "millrace_active_runs"} <= set(families)
    documented = set(re.findall(r"^\| `(millrace_[a-z_]+)` \|", OPERATIONS.read_text(encoding="utf-8"), flags=re.M))
    for family in families.values():
        assert (f"{family.name}_total" if family.type == "counter" else family.name) in documented, \
            f"{family.name} is served but not in the metrics table of docs/operations.md"
        if family.type == "histogram":
            assert family.name.endswith(("_seconds", "_bytes")), f"{family.name}: a histogram names its base unit"
        for sample in family.samples:
            assert set(sample.labels) <= {"outcome", "le"}, sample
            if family.type == "counter":
                assert sample.name.endswith("_total"), sample
    after = _scrape_samples()
    assert after[("millrace_step_attempts_total", "failed")] - before.get(("millrace_step_attempts_total", "failed"), 0) == 1
    assert after[("millrace_step_attempts_total", "retried")] - before.get(("millrace_step_attempts_total", "retried"), 0) == 1
    assert after[("millrace_runs_total", "failed")] - before.get(("millrace_runs_total", "failed"), 0) == 1
    assert after[("millrace_run_duration_seconds_sum", "failed")] - before.get(("millrace_run_duration_seconds_sum", "failed"), 0) == 3
    # A retried attempt ends when its failure is seen (this pass, 5.0); it started with its step (1).
    assert after[("millrace_step_attempt_duration_seconds_sum", "retried")] - \
        before.get(("millrace_step_attempt_duration_seconds_sum", "retried"), 0) == 4
    assert not any(name.endswith("_created") for name, _ in after)


class _NoEvents:
    """Events are not what this test is about: the Event a change makes is dropped."""

    def create(self, _: dict[str, Any]) -> bool:
        return True


def _scrape_samples() -> dict[tuple[str, str], float]:
    text = prometheus_client.generate_latest().decode()
    return {(s.name, s.labels.get("outcome", "")): s.value for f in text_string_to_metric_families(text)
            if f.name.startswith("millrace_") for s in f.samples if "le" not in s.labels}


def test_the_webhook_refuses_a_flowrun_whose_traceparent_is_not_one() -> None:
    from millrace.cluster.admission import review_traceparent

    assert review_traceparent("r", None).allowed and review_traceparent("r", {}).allowed
    assert review_traceparent("r", {"millrace.dev/traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}).allowed
    refused = review_traceparent("r", {"millrace.dev/traceparent": "trace-me"})
    assert refused.errors == ["flowrun 'r', field 'metadata.annotations[millrace.dev/traceparent]': 'trace-me' is not a W3C "
                              "traceparent (00-<32 hex trace id>-<16 hex span id>-<2 hex flags>)"]
