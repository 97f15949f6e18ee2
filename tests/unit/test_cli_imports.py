"""`millrace validate` imports only what checking a flow needs: the cluster client, the
operator framework, the executor and its fork server, and V8 (for a flow whose expressions
are plain member paths) stay out of the process, and so do jsonschema (for a flow with no
schema), the schedule models (for a flow with no schedule), the data store, and what only
the other commands use (the run records and run status models, the engine's events, the
step protocol models, the step tokens). Checked in a fresh interpreter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

NOT_IMPORTED = ["kubernetes", "kopf", "py_mini_racer", "croniter", "yaml", "millrace.local.executor",
                "millrace.local.forkserver", "millrace.local.runner", "millrace.cluster.kube", "millrace.expressions._isolate",
                "jsonschema", "millrace.model.resources", "millrace.schedule.policy", "millrace.local.datastore",
                "millrace.model.run", "millrace.local.store", "millrace.engine.restart", "millrace.engine.events",
                "millrace.runtime.protocol", "millrace.runtime.stepapi.tokens", "millrace.local.environment"]

PROBE = """
import json, sys
from millrace.cli.main import main
code = main(["validate", sys.argv[1]])
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def test_validate_imports_neither_the_cluster_client_nor_the_executor_nor_v8(tmp_path: Path) -> None:
    flow = tmp_path / "flow.json"
    step = {"id": "a", "value": {"type": "rawscript", "language": "python3", "content": "def main(n):\n    return n\n",
                                 "input_transforms": {"n": {"type": "javascript", "expr": "flow_input.n"}}}}
    flow.write_text(json.dumps({"summary": "probe", "value": {"modules": [step]}}))
    proc = subprocess.run([sys.executable, "-c", PROBE, str(flow)], capture_output=True, text=True, check=True)
    outcome = json.loads(proc.stdout.splitlines()[-1])
    assert outcome["code"] == 0, proc.stdout
    assert [name for name in NOT_IMPORTED if name in outcome["modules"]] == []


RUN_PROBE = """
import contextlib, io, json, sys
from millrace.cli.main import main
with contextlib.redirect_stdout(io.StringIO()):
    code = main(["run", sys.argv[1], "--output", "json"])
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def test_run_imports_neither_the_cluster_client_nor_v8_nor_the_toml_parser(tmp_path: Path) -> None:
    """`millrace run` of a flow with plain expressions and no PEP 723 block: no V8, and no tomllib
    (only a script's inline metadata needs it)."""
    flow = tmp_path / "flow.json"
    step = {"id": "a", "value": {"type": "identity"}}
    flow.write_text(json.dumps({"summary": "probe", "value": {"modules": [step]}}))
    proc = subprocess.run([sys.executable, "-c", RUN_PROBE, str(flow)], capture_output=True, text=True, check=True,
                          env={**os.environ, "MILLRACE_HOME": str(tmp_path / "home")})
    outcome = json.loads(proc.stdout.splitlines()[-1])
    assert outcome["code"] == 0, proc.stdout
    assert [name for name in ["kubernetes", "kopf", "py_mini_racer", "tomllib", "jsonschema", "millrace.cluster.kube"]
            if name in outcome["modules"]] == []
