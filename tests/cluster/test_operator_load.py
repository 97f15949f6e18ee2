"""The operator with many live runs: no run holds a thread, so the webhook and new
runs are served however many runs wait. Correctness only; the latency and
memory printed here are for reading (bench/ times 1,000 runs)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from .conftest import free_port
from .test_operator import (Operator, flow_manifest, held_flow, operator,  # noqa: F401 (operator: the fixture)
                            python_step, run_manifest, wait_phase)
from .webhook_tls import serving_certificate, wait_until_listening, webhook_configuration

pytestmark = pytest.mark.cluster

LIVE_RUNS = 300


def webhook_seconds(kube: Any) -> tuple[float, int]:
    """Total seconds and count of the apiserver's calls to the millrace webhooks so far."""
    metrics = kube.kubectl("get", "--raw", "/metrics").stdout
    total, count = 0.0, 0
    for line in metrics.splitlines():
        if line.startswith("apiserver_admission_webhook_admission_duration_seconds_") and ".millrace.dev\"" in line:
            value = float(line.rsplit(" ", 1)[1])
            if line.split("{", 1)[0].endswith("_sum"):
                total += value
            elif line.split("{", 1)[0].endswith("_count"):
                count += int(value)
    return total, count


def resident_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", status)
    assert match, status
    return int(match.group(1)) / 1024


@pytest.fixture
def webhook_operator(kube: Any, operator: Operator, namespace: str, tmp_path: Path) -> Operator:
    """The operator of the `operator` fixture, restarted to serve its webhook on loopback."""
    port = free_port()
    certs = tmp_path / "certs"
    certs.mkdir()
    _, _, ca = serving_certificate(certs)
    operator.stop()
    operator.args = ["--webhook-host", "127.0.0.1", "--webhook-port", str(port), "--webhook-cert-dir", str(certs)]
    operator.start()
    assert operator.process is not None
    wait_until_listening(port, operator.process, operator.log)
    config = f"millrace-load-{namespace}"
    kube.apply(webhook_configuration(config, namespace, port, ca))
    yield operator
    kube.kubectl("delete", "validatingwebhookconfiguration", config, "--ignore-not-found", check=False)


def test_hundreds_of_live_runs_leave_the_webhook_and_new_runs_served(kube: Any, namespace: str,
                                                                      webhook_operator: Operator) -> None:
    kube.apply(held_flow("hold"), namespace)
    runs = [run_manifest(f"hold-{i}", "hold") for i in range(LIVE_RUNS)]
    for start in range(0, LIVE_RUNS, 50):
        # create, not apply: one request per run; the timeout is for a busy machine, not a measure.
        batch = json.dumps({"apiVersion": "v1", "kind": "List", "items": runs[start:start + 50]})
        kube.kubectl("create", "-f", "-", "-n", namespace, input=batch, timeout=600)

    def suspended() -> bool:
        phases = [((r.get("status") or {}).get("phase")) for r in kube.list("flowruns", namespace)]
        return sum(p == "Suspended" for p in phases) == LIVE_RUNS

    kube.wait_for(suspended, timeout=600, what=f"{LIVE_RUNS} runs suspended", interval=2)
    assert kube.list("pods", namespace) == []  # a suspended run holds no pod

    seconds, calls = webhook_seconds(kube)
    # With every run live: the webhook still judges Flows, and a new run goes through to the end.
    good = flow_manifest("later", [python_step("a", "def main(x: int):\n    return x + 1\n", x="flow_input.x")])
    kube.apply(good, namespace)
    twice = python_step("a", "def main():\n    return 1\n")
    refused = kube.apply(flow_manifest("broken", [twice, twice]), namespace, check=False)
    assert refused.returncode != 0 and "duplicate step id 'a'" in refused.stderr
    kube.apply(run_manifest("later-1", "later", {"x": 41}), namespace)
    status = wait_phase(kube, namespace, "later-1", timeout=180)
    assert status["phase"] == "Succeeded", status
    assert status["result"] == 42
    # And the waiting runs are still followed: an approval and a cancel take effect.
    kube.kubectl("patch", "flowrun", "hold-7", "-n", namespace, "--type=merge", "-p", '{"spec": {"cancel": true}}')
    assert wait_phase(kube, namespace, "hold-7", timeout=120)["phase"] == "Cancelled"
    after_seconds, after_calls = webhook_seconds(kube)

    assert webhook_operator.process is not None
    memory = resident_mb(webhook_operator.process.pid)
    calls_made = after_calls - calls
    mean = (after_seconds - seconds) / calls_made if calls_made else float("nan")
    print(f"\n{LIVE_RUNS} live runs: {calls_made} webhook calls, mean {mean * 1000:.0f} ms; "
          f"operator resident memory {memory:.0f} MB")
    assert calls_made >= 3
