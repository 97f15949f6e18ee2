"""The wrappers' Windmill rules hold in step pods too: the same files, mounted into each Job.

tests/local/test_wrappers_windmill.py states each rule with its source in
Windmill; here a few of them are checked through the cluster shell.
"""

from __future__ import annotations

from typing import Any

import pytest

from .test_operator import Operator, flow_manifest, operator, python_step, run_manifest, wait_phase  # noqa: F401

pytestmark = pytest.mark.cluster


def test_python_results_and_arguments_as_windmill_makes_them(kube: Any, namespace: str, operator: Operator) -> None:
    """Windmill: python_executor.rs wrapper.py, res_to_json and the argument spread of prepare_wrapper."""
    code = ("def main(given, missing, default=7):\n"
            "    return {'bytes': b'hi', 'nan': float('nan'), 'set': {1}, 'args': [given, missing, default]}\n")
    kube.apply(flow_manifest("pyconv", [python_step("conv", code, given="1", default="null")]), namespace)
    kube.apply(run_manifest("pyconv-1", "pyconv"), namespace)
    status = wait_phase(kube, namespace, "pyconv-1")
    assert status["phase"] == "Succeeded", status
    assert status["result"] == {"bytes": "aGk=", "nan": None, "set": "{1}", "args": [1, None, 7]}


def test_a_bash_exit_code_is_windmills_execution_error(kube: Any, namespace: str, operator: Operator) -> None:
    """Windmill: result_processor.rs process_result / extract_error_value for a process that exits non-zero."""
    step = {"id": "fail", "value": {"type": "rawscript", "language": "bash", "content": "echo 'é last words'\nexit 3\n",
                                    "input_transforms": {}}}
    kube.apply(flow_manifest("bashfail", [step]), namespace)
    kube.apply(run_manifest("bashfail-1", "bashfail"), namespace)
    status = wait_phase(kube, namespace, "bashfail-1")
    assert status["phase"] == "Failed", status
    assert status["error"]["name"] == "ExecutionErr"
    assert status["error"]["message"] == 'exit code for "bash run": 3, last log lines:\né last words'


def test_a_process_that_exits_without_reporting_is_windmills_execution_error(kube: Any, namespace: str,
                                                                              operator: Operator) -> None:
    """Windmill: python_executor.rs handle_child("python run") and extract_error_value: the exit code and the
    end of the log, as the local shell gives it (tests/local/test_executor.py)."""
    code = "import os\ndef main():\n    print('last words', flush=True)\n    os._exit(3)\n"
    kube.apply(flow_manifest("hardexit", [python_step("leave", code)]), namespace)
    kube.apply(run_manifest("hardexit-1", "hardexit"), namespace)
    status = wait_phase(kube, namespace, "hardexit-1")
    assert status["phase"] == "Failed", status
    assert (status["error"]["name"], status["error"].get("exitCode")) == ("ExecutionErr", 3), status["error"]
    assert status["error"]["message"] == 'exit code for "python run": 3, last log lines:\nlast words'
