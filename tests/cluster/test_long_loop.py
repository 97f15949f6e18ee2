"""A large loop on the control plane: an operator killed in the middle of it loses nothing,
and the FlowRun status stays compact (finished iterations are compacted into the loop)."""

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


def test_an_operator_killed_in_the_middle_of_a_large_loop_loses_nothing(kube: Any, namespace: str,
                                                                        operator: Operator) -> None:
    loop = {"id": "l", "value": {"type": "forloopflow", "parallel": True, "skip_failures": False,
                                 "parallelism": {"type": "static", "value": 20},
                                 "iterator": {"type": "javascript", "expr": f"Array.from({{length: {ITEMS}}}, (_, i) => i)"},
                                 "modules": [python_step("x", "def main(i):\n    return i\n", i="flow_input.iter.value")]}}
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
