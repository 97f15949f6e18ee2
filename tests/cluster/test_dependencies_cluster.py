"""Python packages and workspace imports in the cluster: step pods install from PyPI into the cache
volume the chart configures (steps.pythonCache), and import scripts kept in labelled ConfigMaps."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import Operator, installed_operator
from .test_operator import flow_manifest, labelled, python_step, run_manifest, wait_phase

pytestmark = pytest.mark.cluster

CLAIM = "python-packages"


@pytest.fixture
def operator(kube: Any, helm: Any, namespace: str, tmp_path: Path) -> Iterator[Operator]:
    claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": CLAIM},
             "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "1Gi"}}}}
    kube.apply(claim, namespace)
    with installed_operator(kube, helm, namespace, tmp_path) as op:
        op.stop()  # again with the setting the chart's steps.pythonCache gives it
        op.start(MILLRACE_PYTHON_CACHE_VOLUME=json.dumps({"persistentVolumeClaim": {"claimName": CLAIM}}))
        yield op


def test_a_python_step_installs_its_packages_into_the_cache_and_imports_workspace_scripts(
        kube: Any, namespace: str, operator: Operator) -> None:
    helper = ("# extra_requirements:\n#six==1.16.0\n\nimport six\nfrom .names import GREETING\n\n"
              "def greet(who):\n    return f'{GREETING}, {who} (six {six.__version__})'\n")
    kube.apply(labelled("script", "u/admin/helper", {"language": "python3", "content": helper}), namespace)
    kube.apply(labelled("script", "u/admin/names", {"language": "python3", "content": "GREETING = 'hello'\n"}), namespace)
    code = ("import os\nimport six\nimport u.admin.helper\n\n"
            "def main():\n    folder = os.path.dirname(six.__file__)\n"
            "    return [u.admin.helper.greet('cluster'), folder, os.path.getmtime(os.path.join(folder, '.millrace-complete'))]\n")
    kube.apply(flow_manifest("deps", [python_step("use", code)]), namespace)
    results = []
    for run in ("deps-1", "deps-2"):
        kube.apply(run_manifest(run, "deps"), namespace)
        status = wait_phase(kube, namespace, run, timeout=240)
        assert status["phase"] == "Succeeded", status
        results.append(status["result"])
    first, second = results
    assert first[0] == "hello, cluster (six 1.16.0)"
    # The node agent lays each pod's mounts out below the pod's own folder: /cache/python is in the path.
    assert "/cache/python/" in first[1] and "/cache/python/" in second[1]
    # The second run's pod found the folder the first one installed: same folder, not installed again.
    assert [second[1].rsplit("/", 1)[1], second[2]] == [first[1].rsplit("/", 1)[1], first[2]]


def test_a_typescript_step_imports_an_npm_package_and_the_client(kube: Any, namespace: str, operator: Operator) -> None:
    # bun's auto-install fetches is-number from the npm registry into the pod's own cache (its HOME).
    code = ('import * as wmill from "windmill-client";\nimport isNumber from "is-number";\n'
            "export async function main(x: unknown) { return [typeof wmill.getVariable, isNumber(x), isNumber('no')]; }\n")
    step = {"id": "ts", "value": {"type": "rawscript", "language": "bun", "content": code,
                                  "input_transforms": {"x": {"type": "javascript", "expr": "flow_input.x"}}}}
    kube.apply(flow_manifest("npm", [step]), namespace)
    kube.apply(run_manifest("npm-1", "npm", {"x": 7}), namespace)
    status = wait_phase(kube, namespace, "npm-1", timeout=240)
    assert status["phase"] == "Succeeded", status
    assert status["result"] == ["function", True, False]
