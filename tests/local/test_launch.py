"""The `millrace` console script (cli/launch.py): `millrace run` starts the python3 fork server
before its imports, and a flow with no python3 step closes it unused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.local

PYTHON_STEP = {"id": "a", "value": {"type": "rawscript", "language": "python3", "content": "def main(n):\n    return n + 1\n",
                                    "input_transforms": {"n": {"type": "javascript", "expr": "flow_input.n"}}}}
BASH_STEP = {"id": "b", "value": {"type": "rawscript", "language": "bash", "content": "n=\"$1\"\necho $(( n * 2 ))\n",
                                  "input_transforms": {"n": {"type": "javascript", "expr": "flow_input.n"}}}}


def millrace_run(tmp_path: Path, modules: list[dict[str, object]]) -> dict[str, object]:
    flow = tmp_path / "flow.json"
    flow.write_text(json.dumps({"summary": "launch", "value": {"modules": modules}}))
    proc = subprocess.run([sys.executable, "-m", "millrace.cli.launch", "run", str(flow), "--arg", "n=20", "--output", "json"],
                          capture_output=True, text=True, timeout=60, env={**os.environ, "MILLRACE_HOME": str(tmp_path / "home")})
    assert proc.returncode == 0, proc.stderr[-2000:]
    document: dict[str, object] = json.loads(proc.stdout)
    return document


def test_a_python_flow_runs_on_the_fork_server_started_first(tmp_path: Path) -> None:
    outcome = millrace_run(tmp_path, [PYTHON_STEP])
    assert (outcome["phase"], outcome["result"]) == ("Succeeded", 21)


def test_a_flow_without_python_closes_the_early_fork_server(tmp_path: Path) -> None:
    outcome = millrace_run(tmp_path, [BASH_STEP])
    assert (outcome["phase"], outcome["result"]) == ("Succeeded", "40")
