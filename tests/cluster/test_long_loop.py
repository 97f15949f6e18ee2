"""A large loop on the control plane: an operator killed in the middle of it loses nothing,
and the FlowRun status stays compact (finished iterations are compacted into the loop; large
iterators and results are kept in ConfigMaps owned by the run, cluster/offload.py)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import Operator, installed_operator
from .test_operator import flow_manifest, python_step, run_manifest, wait_phase

pytestmark = pytest.mark.cluster

ITEMS = 200
STATUS_LIMIT = 256 * 1024


@pytest.fixture
def operator(kube: Any, helm: Any, namespace: str, tmp_path: Path) -> Iterator[Operator]:
    with installed_operator(kube, helm, namespace, tmp_path) as op:
        yield op


def _finished(kube: Any, namespace: str, run: str) -> int:
    status = (kube.get("flowrun", run, namespace) or {}).get("status") or {}
    loop = (status.get("steps") or {}).get("l") or {}
    return int((loop.get("loop") or {}).get("finished") or 0)


def _loop(iterator: str, body: str, parallelism: int = 20) -> dict[str, Any]:
    return {"id": "l", "value": {"type": "forloopflow", "parallel": True, "skip_failures": False,
                                 "parallelism": {"type": "static", "value": parallelism},
                                 "iterator": {"type": "javascript", "expr": iterator},
                                 "modules": [python_step("x", body, i="flow_input.iter.value")]}}


def test_an_operator_killed_in_the_middle_of_a_large_loop_loses_nothing(kube: Any, namespace: str,
                                                                        operator: Operator) -> None:
    loop = _loop(f"Array.from({{length: {ITEMS}}}, (_, i) => i)", "def main(i):\n    return i\n")
    total = python_step("total", "def main(l):\n    return [len(l), sum(l), l == sorted(l)]\n", l="results.l")
    kube.apply(flow_manifest("long", [loop, total]), namespace)
    kube.apply(run_manifest("long-1", "long"), namespace)
    kube.wait_for(lambda: _finished(kube, namespace, "long-1") >= ITEMS // 3, timeout=600, interval=1,
                  what="a third of the iterations")
    operator.kill()
    time.sleep(3)  # steps report while no operator runs
    operator.start()
    status = wait_phase(kube, namespace, "long-1", timeout=900)
    assert status["phase"] == "Succeeded", status
    assert status["result"] == [ITEMS, ITEMS * (ITEMS - 1) // 2, True]
    assert set(status["steps"]) == {"l", "total"}
    assert len(json.dumps(status)) < STATUS_LIMIT
    # No step ran twice: one Job per iteration, plus the step after the loop.
    jobs = kube.list("jobs", namespace, "millrace.dev/run=long-1")
    assert len(jobs) == ITEMS + 1


LARGE_ITEMS = 150


def test_large_iterators_and_results_stay_out_of_the_status_and_survive_a_restart(
        kube: Any, namespace: str, operator: Operator) -> None:
    # 150 items of 100 characters (15 KB of iterator), each iteration returning 3 KB: 450 KB of results,
    # which the status alone could not hold under 256 KiB.
    loop = _loop(f"Array.from({{length: {LARGE_ITEMS}}}, (_, i) => String(i).padStart(100, '-'))",
                 "def main(i):\n    return 'r' * 3000 + i.lstrip('-')\n")
    check = python_step("check", "def main(l):\n    return [len(l), all(len(r) == 3000 + len(str(n)) and r.endswith(str(n))"
                                 " for n, r in enumerate(l))]\n", l="results.l")
    kube.apply(flow_manifest("wide", [loop, check]), namespace)
    kube.apply(run_manifest("wide-1", "wide"), namespace)
    largest = 0

    def finished_a_third() -> bool:
        nonlocal largest
        status = (kube.get("flowrun", "wide-1", namespace) or {}).get("status") or {}
        largest = max(largest, len(json.dumps(status)))
        return int((((status.get("steps") or {}).get("l") or {}).get("loop") or {}).get("finished") or 0) >= LARGE_ITEMS // 3

    kube.wait_for(finished_a_third, timeout=600, interval=1, what="a third of the iterations")
    operator.kill()
    time.sleep(3)
    operator.start()

    def ended() -> dict[str, Any] | None:
        nonlocal largest
        status = (kube.get("flowrun", "wide-1", namespace) or {}).get("status") or {}
        largest = max(largest, len(json.dumps(status)))
        return status if status.get("phase") in ("Succeeded", "Failed") else None

    status = kube.wait_for(ended, timeout=900, interval=1, what="the run's end")
    assert status["phase"] == "Succeeded", status
    assert status["result"] == [LARGE_ITEMS, True]
    assert largest < STATUS_LIMIT, largest
    assert status["steps"]["l"].get("resultParts"), status["steps"]["l"]
    kept = kube.list("configmaps", namespace, "millrace.dev/kind=loop-values")
    assert kept and all(cm["metadata"]["ownerReferences"][0]["name"] == "wide-1" for cm in kept)
