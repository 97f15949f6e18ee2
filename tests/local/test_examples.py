"""Every flow of examples/ run through the `millrace` command, as its header says to run it."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from cli_shell import EXAMPLES, Shell

pytestmark = pytest.mark.local

READINGS = [{"at": "2024-06-01T10:00", "celsius": 21.5}, {"at": "2024-06-01T11:00", "celsius": 31.0}]


def args_file(shell: Shell, args: dict) -> Path:
    path = shell.home.parent / "args.json"
    path.write_text(json.dumps(args), encoding="utf-8")
    return path


@pytest.mark.parametrize("manifests", sorted((EXAMPLES / "gitops" / "flows").glob("*.yaml")), ids=lambda p: p.stem)
def test_each_gitops_flow_file_validates(shell: Shell, manifests: Path):
    outcome = shell("validate", manifests)
    assert outcome.code == 0, outcome.err
    assert outcome.err == "", outcome.err  # no warning either

@pytest.mark.parametrize("example", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.stem)
def test_each_example_is_a_flow_manifest_that_says_how_to_run_it(shell: Shell, example: Path):
    text = example.read_text(encoding="utf-8")
    header = text.split("apiVersion:")[0]
    assert header.startswith("# ") and f"millrace run examples/{example.name}" in header
    manifest = yaml.safe_load(text)
    assert manifest["apiVersion"] == "millrace.dev/v1alpha1" and manifest["kind"] == "Flow"
    assert manifest["metadata"]["name"] == example.stem
    # Valid for the operator too: nothing in the flow points at this machine.
    assert not re.search(r"(/tmp/|/home/|/Users/|\.millrace)", yaml.safe_dump(manifest["spec"]))
    outcome = shell("validate", example)
    assert outcome.code == 0, outcome.err


def test_hello_flow(shell: Shell):
    done = shell.run(EXAMPLES / "hello-flow.yaml", "--arg", "name=Ada", "--arg", "times=2")
    assert done["phase"] == "Succeeded"
    assert done["result"] == {"lines": ["1: HELLO, ADA!", "2: HELLO, ADA!"], "size": "a short name"}


def test_temperature_watcher_reports_new_readings_once_and_stops_early_without_any(shell: Shell):
    flow = EXAMPLES / "temperature-watcher.yaml"
    first = shell.run(flow, "--args-file", str(args_file(shell, {"readings": READINGS})))
    assert first["result"] == {"new": 2, "hot": ["2024-06-01T11:00"], "hottest": 31.0}
    assert json.loads((shell.home / "state/temperature-watcher/new_readings.json").read_text()) == {
        "value": "2024-06-01T11:00"}

    again = shell.run(flow, "--args-file", str(args_file(shell, {"readings": READINGS})))
    assert again["exit"] == 0 and again["phase"] == "Succeeded" and again["result"] == []
    record = shell.record(again["run"])
    assert record["stoppedEarly"] is True and "alert" not in record["steps"]

    later = [*READINGS, {"at": "2024-06-01T12:00", "celsius": 29.0}]
    third = shell.run(flow, "--args-file", str(args_file(shell, {"readings": later, "threshold": 28})))
    assert third["result"] == {"new": 1, "hot": ["2024-06-01T12:00"], "hottest": 29.0}


def test_flow_user_state_seed_examples_run_unchanged_and_the_state_ends_with_the_run(shell: Shell):
    flow = EXAMPLES / "flow-user-state.yaml"
    for _ in range(2):
        done = shell.run(flow)
        assert done["phase"] == "Succeeded", done
        assert done["result"] == {"FOO": 42, "foobar": 43}
        steps = shell.record(done["run"])["steps"]
        assert steps["before"]["result"] == {"FOO": None, "foobar": None}
        assert steps["typescript"]["result"] == 42 and steps["python"]["result"] == 43
        assert shell.record(done["run"])["userState"] == {"FOO": 42, "foobar": 43}


def test_shared_etl_passes_a_file_over_10_mb_through_the_shared_directory(shell: Shell):
    done = shell.run(EXAMPLES / "shared-etl.yaml")
    assert done["phase"] == "Succeeded", done
    result = done["result"]
    assert result["raw_bytes_seen"] == result["raw_bytes_written"] > 10 * 1024 * 1024
    assert {region: totals["orders"] for region, totals in result["totals"].items()} == dict.fromkeys(
        ["east", "north", "south", "west"], 100_000)
    assert sum(totals["cents"] for totals in result["totals"].values()) == sum(n % 1000 for n in range(400_000))
    assert not (shell.home / "runs" / done["run"] / "shared").exists()


def test_approval_flow_suspends_then_resumes_with_the_payload_and_approver(shell: Shell):
    outcome = shell("run", EXAMPLES / "approval-flow.yaml", "--arg", "amount=120")
    assert outcome.code == 0
    run_id = re.search(r"run (\S+) suspended at step 'prepare'", outcome.err).group(1)
    assert f"millrace resume {run_id}" in outcome.err and f"millrace cancel {run_id}" in outcome.err
    links = shell.record(run_id)["steps"]["prepare"]["result"]["links"]
    assert set(links) == {"approvalPage", "resume", "cancel"}
    assert all(link.startswith("http://127.0.0.1:") for link in links.values())

    refused = shell("resume", run_id, "--payload", '{"note": "no comment field"}')
    assert refused.code == 2 and "missing required input 'comment'" in refused.err
    resumed = shell("resume", run_id, "--payload", '{"comment": "fine"}', "--approver", "ann", "--output", "json")
    assert resumed.code == 0
    assert resumed.json()["result"] == {"paid": 120, "comment": "fine", "approved_by": ["ann"]}


def test_approval_flow_cancelled(shell: Shell):
    suspended = shell.run(EXAMPLES / "approval-flow.yaml", "--arg", "amount=5")
    assert suspended["phase"] == "Suspended" and suspended["suspended_step"] == "prepare"
    assert suspended["duration_s"] >= 0
    cancelled = shell("cancel", suspended["run"], "--reason", "too much", "--by", "bob", "--output", "json")
    assert cancelled.code == 1
    assert cancelled.json()["phase"] == "Cancelled" and cancelled.json()["error"]["message"] == "too much (by bob)"
    assert "pay" not in shell.record(suspended["run"])["steps"]


def test_local_resume_links_end_with_the_command_that_served_them(shell: Shell):
    suspended = shell.run(EXAMPLES / "approval-flow.yaml", "--arg", "amount=5")
    link = shell.record(suspended["run"])["steps"]["prepare"]["result"]["links"]["resume"]
    # The step API lived as long as `millrace run`: nothing answers the link now.
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(link, timeout=5)


def test_retry_flow_retries_transient_errors_only(shell: Shell):
    done = shell.run(EXAMPLES / "retry-flow.yaml")
    assert done["phase"] == "Succeeded", done
    assert done["result"] == {"flaky": {"attempts": 3}, "strict_error": "3 is not a valid answer"}
    steps = shell.record(done["run"])["steps"]
    assert (steps["flaky"]["attempts"], steps["strict"]["attempts"]) == (3, 1)
    # Constant retry after 0 s, then exponential after 1 * 1 ** 1 s.
    assert steps["flaky"]["finishedAt"] - steps["flaky"]["startedAt"] >= 1.0


def test_failure_handler_sees_the_error_and_the_step(shell: Shell):
    failed = shell.run(EXAMPLES / "failure-handler-flow.yaml")
    assert failed["exit"] == 1 and failed["phase"] == "Failed"
    assert failed["error"]["name"] == "ZeroDivisionError" and failed["error"]["step_id"] == "divide"
    result = failed["result"]
    assert result["alert"] == "step divide failed: ZeroDivisionError: division by zero"
    assert result["step"] == "divide" and result["same"] is True

    fine = shell.run(EXAMPLES / "failure-handler-flow.yaml", "--arg", "divisor=4")
    assert fine["phase"] == "Succeeded" and fine["result"] == 25.0
