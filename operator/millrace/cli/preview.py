"""`millrace preview FILE STEP`: run one step of a flow on its own, as Windmill's per-step preview does.

The step gets the flow inputs (`--arg`) and earlier steps' results
(`--results`, a JSON object by step id), or those of a recorded local run
(`--run`; `--arg` and `--results` then override single inputs and results).
Its result is printed as JSON; its log goes to stderr. Nothing is recorded as a run.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from ..errors import FlowError, Problem
from .args import json_object_file, parse_args

EXIT_OK, EXIT_FAILED = 0, 1


def register(sub: Any) -> None:
    preview = sub.add_parser("preview", help="run one step of a flow with given inputs and earlier results")
    preview.add_argument("file", type=Path, help="a Flow manifest or a bare OpenFlow file")
    preview.add_argument("step", help="the id of the step to run")
    preview.add_argument("--arg", action="append", default=[], metavar="KEY=VALUE", help="a flow input (repeatable)")
    preview.add_argument("--results", type=Path, help="a JSON file: earlier steps' results, an object by step id")
    preview.add_argument("--run", help="a recorded local run whose inputs and step results the step sees")
    preview.add_argument("--scripts", type=Path, action="append", default=[], help="a folder where script and flow paths resolve")


def _results_file(name: str, path: Path) -> dict[str, Any]:
    return json_object_file(name, path, "--results", "results", "a JSON object of results by step id")


def _recorded(name: str, run_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A local run's inputs and the results its record holds, by step id (a nested step's latest one kept)."""
    from ..local.store import RunStore

    store = RunStore()
    try:
        loaded, _, state = store.load(run_id)
    except KeyError:
        raise FlowError([Problem(name, f"no run '{run_id}' under {store.root}", field="run")]) from None
    if loaded.name != name:
        raise FlowError([Problem(name, f"run '{run_id}' is a run of flow '{loaded.name}'", field="run")])
    finished = sorted((s.finished_at, path, s.result) for path, s in state.steps.items() if s.finished_at is not None)
    return dict(state.args), {path.rsplit("/", 1)[-1]: result for _, path, result in finished}


def main(options: argparse.Namespace) -> int:
    # The executor and V8 are imported here, not by `millrace validate` (tests/unit/test_cli_imports.py).
    from ..engine.evaluate import Evaluator
    from ..engine.preview import preview_action
    from ..expressions import Sandbox
    from ..local.datastore import DataStore
    from ..local.executor import LocalExecutor
    from ..runtime.protocol import FLOW_ENV, RUN_ID_ENV, STEP_ID_ENV, StepRequest
    from .main import load_runnable

    loaded, library, warnings = load_runnable(options.file, options.scripts)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    name = loaded.name
    inputs, results = _recorded(name, options.run) if options.run else ({}, {})
    inputs.update(parse_args(name, loaded.flow.schema_, options.arg, None))
    if options.results is not None:
        results.update(_results_file(name, options.results))
    data = DataStore()
    variables, resources = data.views()
    with Sandbox() as sandbox:
        action = preview_action(name, loaded.flow, library, Evaluator(sandbox, variables, resources),
                                options.step, inputs, results)
    flow_key = data.state_key(name, loaded.source) if loaded.source is not None else name
    with LocalExecutor() as executor, tempfile.TemporaryDirectory(prefix="millrace-preview-") as workdir:
        request = StepRequest(key=action.key, language=action.language, code=action.code, args=action.args,
                              workdir=workdir, timeout_s=action.timeout_s,
                              env={RUN_ID_ENV: f"preview-{action.step_id}", FLOW_ENV: flow_key,
                                   "MILLRACE_STEP_PATH": action.path, STEP_ID_ENV: action.step_id})
        outcome = executor.run(request)
    if outcome.logs:
        print(outcome.logs.rstrip("\n"), file=sys.stderr)
    if not outcome.ok:
        error = outcome.error
        print(f"error: flow '{name}', step '{action.step_id}': {error.name}: {error.message}" if error else
              f"error: flow '{name}', step '{action.step_id}' failed", file=sys.stderr)
        if error and error.stack:
            print(error.stack.rstrip(), file=sys.stderr)
        return EXIT_FAILED
    print(json.dumps(outcome.result, indent=2, default=str))
    return EXIT_OK
