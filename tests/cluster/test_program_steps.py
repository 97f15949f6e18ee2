"""Program steps (`# sandbox <image>`) through the operator: the command in an init container of the
step's image, the report from the pod's bash container. The node agent ignores images, so the
command runs with this machine's programs; the pod's shape is what a real cluster runs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import Operator, installed_operator
from .test_operator import flow_manifest, run_manifest, wait_phase

pytestmark = pytest.mark.cluster


@pytest.fixture
def operator(kube: Any, helm: Any, namespace: str, tmp_path: Path) -> Iterator[Operator]:
    with installed_operator(kube, helm, namespace, tmp_path) as op:
        yield op


def bash_step(step_id: str, code: str, **transforms: dict[str, Any]) -> dict[str, Any]:
    return {"id": step_id, "value": {"type": "rawscript", "language": "bash", "content": code, "input_transforms": transforms}}


TOOL = """\
# sandbox python:3.12-slim
name="$1"
python3 -c 'import json, sys; a = json.load(open("args.json")); json.dump({"hello": sys.argv[1], "double": a["n"] * 2}, open("result.json", "w"))' "$name"
echo "tool ran"
"""


def test_a_program_step_runs_in_its_image_and_a_failing_one_fails_its_job(kube: Any, namespace: str,
                                                                           operator: Operator) -> None:
    tool = bash_step("tool", TOOL, name={"type": "static", "value": "world"}, n={"type": "javascript", "expr": "flow_input.n"})
    last_line = bash_step("echo", '# sandbox alpine:3.20\nd="$1"\necho "double is $d"\n',
                          d={"type": "javascript", "expr": "results.tool.double"})
    fails = bash_step("fails", "# sandbox alpine:3.20\necho 'giving up'\nexit 4\n")
    kube.apply(flow_manifest("programs", [tool, last_line, fails]), namespace)
    kube.apply(run_manifest("programs-1", "programs", {"n": 21}), namespace)
    status = wait_phase(kube, namespace, "programs-1", timeout=180)
    steps = status["steps"]
    assert steps["tool"]["result"] == {"hello": "world", "double": 42}, status
    assert steps["echo"]["result"] == "double is 42"
    assert status["phase"] == "Failed" and status["error"]["step_id"] == "fails", status
    assert status["error"]["message"] == 'exit code for "bash run": 4, last log lines:\ngiving up'
    [job] = kube.list("jobs", namespace, "millrace.dev/run=programs-1,millrace.dev/step=tool")
    pod_spec = job["spec"]["template"]["spec"]
    assert [(c["name"], c["image"]) for c in pod_spec["initContainers"] + pod_spec["containers"]] == [
        ("prepare", "bash:5.2"), ("program", "python:3.12-slim"), ("step", "bash:5.2")]
    # The command's output is in the reporting container's log.
    [pod] = kube.list("pods", namespace, f"job-name={job['metadata']['name']}")
    assert "tool ran" in kube.logs(namespace, pod["metadata"]["name"], "step")
    [failed] = kube.list("jobs", namespace, "millrace.dev/run=programs-1,millrace.dev/step=fails")
    assert kube.job_condition(namespace, failed["metadata"]["name"]) == "Failed"
