"""What `kubectl millrace get`, `describe` and `logs` make of FlowRun objects (no cluster)."""

from __future__ import annotations

from typing import Any

import pytest

from millrace.cli.kubectl.errors import PluginError
from millrace.cli.kubectl.start import retry_body
from millrace.cli.kubectl.tables import describe, runs_table, step_tree, status_of
from millrace.cli.kubectl.times import age, epoch, rfc3339, span
from millrace.cluster.steplogs import bounded, beside, pod_of_job
from millrace.model.times import format_duration as took
from millrace.model.run import StepState

NOW = 1_800_000_000.0


def flowrun(name: str, status: dict[str, Any], created: str = "2027-01-15T08:00:00Z", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "millrace.dev/v1alpha1", "kind": "FlowRun",
            "metadata": {"name": name, "namespace": "demo", "creationTimestamp": created, "uid": "u-1"},
            "spec": {"flowRef": {"name": "etl"}, "args": {"n": 3}, **spec}, "status": status}


def step(phase: str, began: float | None = None, ended: float | None = None, **more: Any) -> dict[str, Any]:
    return {"phase": phase, "startedAt": began, "finishedAt": ended, **more}


def test_status_times_are_read_as_numbers_or_rfc3339_strings() -> None:
    assert epoch(1_700_000_000) == 1_700_000_000.0
    assert epoch("2023-11-14T22:13:20Z") == 1_700_000_000.0
    assert epoch("2023-11-14T22:13:20.500000+00:00") == 1_700_000_000.5
    assert epoch(None) is None and epoch("") is None
    assert span("2023-11-14T22:13:20Z", 1_700_000_002.5, NOW) == 2.5
    assert span(NOW - 10, None, NOW) == 10.0 and span(None, None, NOW) is None


def test_durations_and_ages_read_as_kubectl_shows_them() -> None:
    assert [took(s) for s in (0.516, 59.994, 184, 7500)] == ["0.52s", "59.99s", "3m04s", "2h05m"]
    assert [age(s) for s in (5, 59, 60, 600, 7199, 7200, 3 * 86400)] == ["5s", "59s", "1m", "10m", "119m", "2h", "3d"]


def test_get_lists_runs_oldest_first_with_flow_phase_step_duration_and_age() -> None:
    running = flowrun("etl-b", {"phase": "Running", "startedAt": NOW - 90, "steps": {
        "load": step("Running", NOW - 80, type="rawscript", attempts=1),
        "each": step("Running", NOW - 85, type="forloopflow", attempts=1),
        "each/0/fetch": step("Running", NOW - 84, type="rawscript", attempts=1)}}, created="2027-01-15T07:58:00Z")
    done = flowrun("etl-a", {"phase": "Succeeded", "startedAt": NOW - 3600, "finishedAt": NOW - 3598.75},
                   created="2027-01-15T07:00:00Z")
    waiting = flowrun("etl-c", {"phase": "Suspended", "suspendedStep": "approve"}, created="2027-01-15T07:59:00Z")
    inline = flowrun("adhoc", {}, created="2027-01-15T07:59:30Z", flowRef=None, flow={"value": {"modules": []}})
    lines = runs_table([running, done, waiting, inline], 1_800_000_000.0)
    assert [line.split() for line in lines] == [
        ["NAME", "FLOW", "PHASE", "STEP", "DURATION", "AGE"],
        ["etl-a", "etl", "Succeeded", "-", "1.25s", age(NOW - epoch("2027-01-15T07:00:00Z"))],
        ["etl-b", "etl", "Running", "load", "(+1)", "1m30s", age(NOW - epoch("2027-01-15T07:58:00Z"))],
        ["etl-c", "etl", "Suspended", "approve", "-", age(NOW - epoch("2027-01-15T07:59:00Z"))],
        ["adhoc", "(inline)", "Pending", "-", "-", age(NOW - epoch("2027-01-15T07:59:30Z"))],
    ]
    # Columns line up: every cell starts where its header does.
    assert lines[2].index("Running") == lines[0].index("PHASE")


def test_the_step_tree_puts_each_step_under_its_container_in_the_order_they_began() -> None:
    steps = {path: StepState() for path in
             ["a", "each", "each/3/inner", "each/3/inner2", "pick", "each/4/inner", "pick/1/x", "sub", "sub/deep", "z"]}
    assert step_tree(steps) == [
        (0, "a", "a"), (0, "each", "each"), (1, "3/inner", "each/3/inner"), (1, "3/inner2", "each/3/inner2"),
        (1, "4/inner", "each/4/inner"), (0, "pick", "pick"), (1, "1/x", "pick/1/x"), (0, "sub", "sub"),
        (1, "deep", "sub/deep"), (0, "z", "z")]
    # A step whose container is not in the status (compacted) stands at the top.
    assert step_tree({"each/2/inner": StepState()}) == [(0, "each/2/inner", "each/2/inner")]


def test_describe_shows_the_run_then_its_steps_with_phases_durations_attempts_loops_and_errors() -> None:
    error = {"name": "ValueError", "message": "no luck\nsecond line", "stack": "  File main.py, in helper\n", "step_id": "load"}
    obj = flowrun("etl-x", {
        "phase": "Failed", "startedAt": NOW - 12, "finishedAt": NOW - 2, "args": {"n": 3}, "error": error,
        "steps": {
            "fetch": step("Succeeded", NOW - 12, NOW - 11.5, type="rawscript", attempts=1),
            "each": step("Succeeded", NOW - 11, NOW - 6, type="forloopflow", attempts=1,
                         loop={"finished": 7, "failure": {"name": "Boom", "message": "x"}, "failureIndex": 4}),
            "poll": step("Succeeded", NOW - 6, NOW - 5, type="whileloopflow", attempts=1, started=4),
            "load": step("Failed", NOW - 5, NOW - 2, type="rawscript", attempts=3, error=error),
        }})
    obj["metadata"]["annotations"] = {"millrace.dev/retry-of": "etl-w"}
    text = "\n".join(describe(obj, NOW))
    head, steps = text.split("Steps:\n")
    assert head.splitlines() == [
        "Name:      etl-x", "Namespace: demo", "Flow:      etl", "Phase:     Failed", "Retry of:  flowrun/etl-w",
        f"Started:   {rfc3339(NOW - 12)}", "Duration:  10.00s",
        'Args:      {"n": 3}', "Error:     ValueError in step load: no luck"]
    rows = steps.splitlines()
    assert rows[0].split() == ["STEP", "PHASE", "DURATION", "ATTEMPTS", "DETAIL"]
    assert rows[1].split() == ["fetch", "succeeded", "0.50s", "1"]
    assert rows[2].split() == ["each", "succeeded", "5.00s", "1", "7", "iterations,", "iteration", "4", "failed:", "Boom"]
    assert rows[3].split() == ["poll", "succeeded", "1.00s", "1", "iteration", "4"]
    assert rows[4].split() == ["load", "failed", "3.00s", "3", "ValueError:", "no", "luck"]
    # The rest of the error under its step: the message's other lines, then the stack.
    assert [r.strip() for r in rows[5:]] == ["second line", "File main.py, in helper"]


def test_describe_a_run_not_started_and_one_with_its_result_beside_the_status() -> None:
    assert describe(flowrun("etl-y", {}), NOW)[-2:] == ["Steps:", "  (none started yet)"]
    done = flowrun("etl-z", {"phase": "Succeeded", "startedAt": NOW - 1, "finishedAt": NOW, "resultRef": "cm-1"})
    lines = describe(done, NOW, result=["row"] * 200)
    assert any(line.startswith('Result:    ["row", "row"') and line.endswith("... (1400 characters)") for line in lines)


def test_a_status_this_version_cannot_read_is_said_to_be_so() -> None:
    with pytest.raises(PluginError, match="flowrun/odd: its status cannot be read by this kubectl millrace"):
        status_of(flowrun("odd", {"phase": "Exploded"}))


def test_retry_keeps_flow_and_args_or_restarts_from_a_step_with_the_runs_own_args() -> None:
    old = flowrun("etl-1", {"phase": "Failed"}, preprocess=True)
    body = retry_body(old, "load")
    assert body == {"metadata": {"generateName": "etl-", "namespace": "demo",
                                 "annotations": {"millrace.dev/retry-of": "etl-1"}},
                    "spec": {"flowRef": {"name": "etl"}, "restartFrom": {"run": "etl-1", "step": "load"}}}
    assert retry_body(old, None)["spec"] == {"flowRef": {"name": "etl"}, "args": {"n": 3}, "preprocess": True}
    inline = flowrun("adhoc-1", {}, flowRef=None, flow={"value": {"modules": []}})
    assert retry_body(inline, None)["spec"]["flow"] == {"value": {"modules": []}}
    with pytest.raises(PluginError, match="runs an inline flow: --from restarts only a run of a Flow"):
        retry_body(inline, "load")
    with pytest.raises(PluginError, match="--from takes the id of a top-level step, not 'each/0/x'"):
        retry_body(old, "each/0/x")
    child = flowrun("etl-1-sub", {}, argsSecret="etl-1-sub-args")
    child["metadata"]["labels"] = {"millrace.dev/parent-run": "etl-1"}
    with pytest.raises(PluginError, match="an inner flow's run"):
        retry_body(child, None)


def test_the_kept_log_is_the_end_of_the_log_from_a_line_start_within_the_bound() -> None:
    log = "".join(f"line {i}\n" for i in range(100))
    assert bounded(log, len(log)) == log
    cut = bounded(log, 50)
    assert log.endswith(cut) and cut.startswith("line ") and len(cut.encode()) <= 50
    # Multi-byte characters are never split.
    assert bounded("é" * 10, 5) == "éé"
    # One line longer than the bound: its end.
    assert bounded("x" * 100, 10) == "x" * 10
    # Beside a report, the tail gives way.
    assert beside(log, "r" * (1024 * 1024)) == ""
    assert beside(log, "{}") == log


def test_a_pod_a_step_names_counts_only_if_it_can_only_be_a_pod_of_the_steps_job() -> None:
    job = "r-s0-1-job-0123456789ab"
    assert pod_of_job(job, f"{job}-x7k2p")
    assert not pod_of_job(job, None) and not pod_of_job(job, f"{job}-x7k2") and not pod_of_job(job, f"{job}-x7-2p")
    assert not pod_of_job(job, f"{job}-ab-x7k2p")  # a pod of the Job named `{job}-ab`
    assert not pod_of_job(job, "other-x7k2p") and not pod_of_job(job, f"{job}-X7K2P")
    long = "r" * 50 + "-job-0123"  # over 57 characters: its pods' names cut it, so they could be another Job's
    assert not pod_of_job(long, f"{long}-x7k2p"[:63])
