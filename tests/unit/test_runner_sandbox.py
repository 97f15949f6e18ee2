"""A local run given a sandbox evaluates its expressions there and leaves it open: `millrace run`
checks the flow and runs it with one V8 isolate."""

from __future__ import annotations

from pathlib import Path

from millrace.expressions import EvalContext, Sandbox
from millrace.local.datastore import DataStore
from millrace.local.runner import LocalRun
from millrace.local.store import RunStore
from millrace.model.loader import load_flow_document
from millrace.runtime.protocol import StepOutcome, StepRequest


class Echo:
    def run(self, request: StepRequest) -> StepOutcome:
        return StepOutcome(ok=True, result=request.args.get("x"))


def test_a_run_uses_the_sandbox_it_is_given_and_leaves_it_open(tmp_path: Path) -> None:
    script = {"type": "rawscript", "language": "python3", "content": "def main(x):\n    return x\n",
              "input_transforms": {"x": {"type": "javascript", "expr": "flow_input.n * 2"}}}
    loaded = load_flow_document({"summary": "", "value": {"modules": [{"id": "a", "value": script}]}}, "double")
    with Sandbox() as sandbox:
        run = LocalRun(loaded=loaded, executor=Echo(), store=RunStore(tmp_path), data=DataStore(tmp_path), sandbox=sandbox)
        assert run.execute({"n": 21}).result == 42
        assert sandbox._isolate is not None  # started by the run's expression, still open for its owner
        assert sandbox.evaluate("1 + 1", EvalContext(flow_input={}, results={}, previous_result=None)) == 2
