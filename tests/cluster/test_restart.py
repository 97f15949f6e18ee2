"""A FlowRun with spec.restartFrom {run, step}: the operator copies the earlier run's steps before
the step (results, large ones included) into the new run's status and runs from the step
(engine/restart.py, after Windmill's restarted_flows_resolution in windmill-queue jobs.rs)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import Operator, installed_operator
from .test_operator import flow_manifest, python_step, run_manifest, wait_phase

pytestmark = pytest.mark.cluster

A = """\
import secrets
def main(n: int):
    return {"token": secrets.token_hex(8), "n": n, "padding": "x" * 6000}
"""
B = """\
def main(prev: dict):
    return {"token": prev["token"], "double": prev["n"] * 2}
"""
C = """\
def main(a: dict, b: dict):
    return {"same": a["token"] == b["token"], "token": b["token"], "double": b["double"]}
"""


@pytest.fixture
def operator(kube: Any, helm: Any, namespace: str, tmp_path: Path) -> Iterator[Operator]:
    with installed_operator(kube, helm, namespace, tmp_path) as op:
        yield op


def restart_manifest(name: str, flow: str, run: str, step: str) -> dict[str, Any]:
    manifest = run_manifest(name, flow)
    del manifest["spec"]["args"]
    manifest["spec"]["restartFrom"] = {"run": run, "step": step}
    return manifest


def jobs_of(kube: Any, namespace: str, run: str, step: str) -> list[dict[str, Any]]:
    return kube.list("jobs", namespace, f"millrace.dev/run={run},millrace.dev/step={step}")


def test_a_run_restarted_from_b_reuses_a_and_gives_the_same_result(kube: Any, namespace: str, operator: Operator) -> None:
    kube.apply(flow_manifest("abc", [python_step("a", A, n="flow_input.n"), python_step("b", B, prev="previous_result"),
                                     python_step("c", C, a="results.a", b="results.b")]), namespace)
    kube.apply(run_manifest("abc-1", "abc", {"n": 21}), namespace)
    first = wait_phase(kube, namespace, "abc-1", timeout=120)
    assert first["phase"] == "Succeeded", first
    assert first["result"]["same"] and first["result"]["double"] == 42
    assert first["steps"]["a"]["resultRef"]  # over 4 KiB: kept in a's report

    kube.apply(restart_manifest("abc-2", "abc", "abc-1", "b"), namespace)
    again = wait_phase(kube, namespace, "abc-2", timeout=120)
    assert again["phase"] == "Succeeded", again
    assert again["result"] == first["result"]
    assert again["restartedFrom"] == {"run": "abc-1", "step": "b"}
    assert again["args"] == {"n": 21}
    assert jobs_of(kube, namespace, "abc-2", "a") == []  # a is not run again
    assert [len(jobs_of(kube, namespace, "abc-2", s)) for s in ("b", "c")] == [1, 1]
    # The large result of a is the new run's own copy.
    copy = kube.get("configmap", again["steps"]["a"]["resultRef"], namespace)
    assert copy is not None and copy["metadata"]["ownerReferences"][0]["name"] == "abc-2"

    # The earlier run gone (and what it owns collected), a run restarted from the restarted one still has a.
    kube.kubectl("delete", "flowrun", "abc-1", "-n", namespace, "--wait=true")
    kube.wait_for(lambda: kube.get("configmap", first["steps"]["a"]["resultRef"], namespace) is None,
                  timeout=60, what="the first run's report of a collected")
    kube.apply(restart_manifest("abc-3", "abc", "abc-2", "c"), namespace)
    third = wait_phase(kube, namespace, "abc-3", timeout=120)
    assert third["phase"] == "Succeeded" and third["result"] == first["result"], third
    assert [len(jobs_of(kube, namespace, "abc-3", s)) for s in ("a", "b", "c")] == [0, 0, 1]


def test_a_restart_the_earlier_run_does_not_allow_fails_the_run(kube: Any, namespace: str, operator: Operator) -> None:
    """The reconciler checks what the webhook cannot (the webhook is off here, so it checks all)."""
    kube.apply(flow_manifest("ab", [python_step("a", "def main():\n    raise RuntimeError('no')\n"),
                                    python_step("b", "def main():\n    return 1\n")]), namespace)
    kube.apply(run_manifest("ab-1", "ab"), namespace)
    assert wait_phase(kube, namespace, "ab-1")["phase"] == "Failed"
    cases = {
        "ab-2": ("ab-1", "b", "flow 'ab', step 'b', field 'spec.restartFrom.step': step 'a' before it did not succeed "
                              "in run 'ab-1' (failed): restart from 'a' or before"),
        "ab-3": ("ab-1", "zz", "flow 'ab', step 'zz', field 'spec.restartFrom.step': no such top-level step in the flow"),
        "ab-4": ("gone", "a", "flow 'ab', field 'spec.restartFrom.run': no FlowRun 'gone' in namespace"),
    }
    for name, (run, step, _) in cases.items():
        kube.apply(restart_manifest(name, "ab", run, step), namespace)
    for name, (_, _, message) in cases.items():
        status = wait_phase(kube, namespace, name)
        assert status["phase"] == "Failed" and status["error"]["name"] == "InvalidRestart", status
        assert status["error"]["message"].startswith(message), status["error"]
        assert kube.list("jobs", namespace, f"millrace.dev/run={name}") == []


def test_a_reused_loop_keeps_its_large_result_in_configmaps_of_the_new_run(kube: Any, namespace: str,
                                                                            operator: Operator) -> None:
    """A loop's result over 4 KiB is offloaded (cluster/offload.py): the copy is written anew, owned by the new run."""
    body = [python_step("x", "def main(v: int):\n    return str(v) * 2000\n", v="flow_input.iter.value")]
    loop = {"id": "l", "value": {"type": "forloopflow", "iterator": {"type": "javascript", "expr": "[1, 2, 3]"},
                                 "skip_failures": False, "modules": body}}
    kube.apply(flow_manifest("loops", [loop, python_step("c", "def main(l: list, x: str):\n    return [len(s) for s in l] + [x[:3]]\n",
                                                           l="results.l", x="results.x")]), namespace)
    kube.apply(run_manifest("loops-1", "loops"), namespace)
    first = wait_phase(kube, namespace, "loops-1", timeout=120)
    assert first["phase"] == "Succeeded" and first["result"] == [2000, 2000, 2000, "333"], first
    assert first["steps"]["l"]["resultParts"]
    kube.apply(restart_manifest("loops-2", "loops", "loops-1", "c"), namespace)
    again = wait_phase(kube, namespace, "loops-2", timeout=120)
    assert again["phase"] == "Succeeded" and again["result"] == first["result"], again
    assert [job["metadata"]["labels"]["millrace.dev/step"] for job in kube.list("jobs", namespace, "millrace.dev/run=loops-2")] == ["c"]
    parts = again["steps"]["l"]["resultParts"]
    assert parts and not set(parts) & set(first["steps"]["l"]["resultParts"])
    assert all(kube.get("configmap", part, namespace)["metadata"]["ownerReferences"][0]["name"] == "loops-2" for part in parts)
