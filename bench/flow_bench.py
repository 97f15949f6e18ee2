"""Windmill's published benchmark, run here: 40 sequential Python steps, each a
naive fibo(10) in its own process.

Two shapes of the same work: a flow of 40 modules, and a for loop of 40
iterations over one script. Baselines measured in the same run: the same 40
scripts run back to back by a plain shell loop (`python3 -c`, one process
each), and the executor alone (40 steps with no engine around them), so the
difference is the engine's own per-step overhead.

    python bench/flow_bench.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

from common import ROUNDS, Section, Timing, measure, ratio

from millrace.local.executor import LocalExecutor
from millrace.local.runner import LocalRun
from millrace.local.store import RunStore
from millrace.model.loader import load_flow_document
from millrace.runtime.protocol import StepRequest

STEPS = 40
TARGET_S = 0.6  # issue 2: the whole 40-step flow on this 2-core machine
FIBO = "def fibo(n):\n    return n if n < 2 else fibo(n - 1) + fibo(n - 2)\n\n\ndef main(n: int):\n    return fibo(n)\n"
PYTHON = os.path.realpath(sys.executable)
SHELL = "shell loop of python3 -c (baseline)"
EXECUTOR = "executor alone, 40 steps (baseline)"
MODULES = "millrace: 40 modules"
LOOP = "millrace: for loop of 40"


def _script(step_id: str, n_expr: str) -> dict[str, Any]:
    return {"id": step_id, "value": {"type": "rawscript", "language": "python3", "content": FIBO,
                                     "input_transforms": {"n": {"type": "javascript", "expr": n_expr}}}}


def sequential_flow() -> dict[str, Any]:
    return {"summary": "40 sequential steps", "value": {"modules": [_script(f"s{i}", "flow_input.n") for i in range(STEPS)]}}


def loop_flow() -> dict[str, Any]:
    loop = {"id": "loop", "value": {"type": "forloopflow", "skip_failures": False, "parallel": False,
                                    "iterator": {"type": "javascript", "expr": f"Array.from({{length: {STEPS}}}, () => flow_input.n)"},
                                    "modules": [_script("fibo", "flow_input.iter.value")]}}
    return {"summary": "a for loop of 40 iterations", "value": {"modules": [loop]}}


def shell_loop() -> None:
    # The interpreter's real path: `python3` on PATH may be a version manager's shim (pyenv's is a bash
    # script costing about 100 ms per call here), which would flatter everything measured against it.
    script = FIBO + "\nimport json\nprint(json.dumps(main(10)))\n"
    subprocess.run(["bash", "-c", f'for i in $(seq {STEPS}); do "$1" -c "$0" >/dev/null; done', script, PYTHON], check=True)


def run_flow(document: dict[str, Any], executor: LocalExecutor, store: RunStore) -> Callable[[], None]:
    loaded = load_flow_document(document, "bench")

    def once() -> None:
        state = LocalRun(loaded=loaded, executor=executor, store=store).execute({"n": 10})
        assert state.phase == "Succeeded", state.error

    return once


def executor_only(executor: LocalExecutor, root: str) -> Callable[[], None]:
    def once() -> None:
        for index in range(STEPS):
            outcome = executor.run(StepRequest(key=f"s{index}/1", language="python3", code=FIBO, args={"n": 10},
                                               workdir=f"{root}/{index}"))
            assert outcome.ok and outcome.result == 55

    return once


def run(rounds: int = ROUNDS) -> dict[str, Timing]:
    with tempfile.TemporaryDirectory() as root, LocalExecutor() as executor:
        store = RunStore(Path(root) / "home")
        return {
            SHELL: measure(shell_loop, rounds),
            EXECUTOR: measure(executor_only(executor, f"{root}/plain"), rounds),
            MODULES: measure(run_flow(sequential_flow(), executor, store), rounds),
            LOOP: measure(run_flow(loop_flow(), executor, store), rounds),
        }


def section(rounds: int = ROUNDS) -> Section:
    timings = run(rounds)
    shell, executor = timings[SHELL].best, timings[EXECUTOR].best
    out = Section(
        key="local", title="Local: 40 sequential python3 steps, fibo(10) each (in process)",
        how=(f"Windmill's published method: 40 sequential Python steps, each computing a naive fibo(10) in its own "
             f"process, as 40 modules and as a for loop over one script, run through `LocalRun` (the engine of "
             f"`millrace run`, without the CLI's start-up). Baselines in the same run: the same 40 scripts by a bash "
             f"loop of `python3 -c` (one interpreter each), and the executor alone (the same 40 step processes from "
             f"the fork server, no planner, no expressions, no run record). Engine overhead per step = (flow - "
             f"executor alone) / 40. Each row: one warm-up run, then best and median of {rounds} rounds."),
        header=["what", f"best of {rounds} (s)", "median (s)", "per step (ms)", "vs shell loop", "vs executor alone",
                "engine overhead per step (ms)"],
    )
    for name, t in timings.items():
        overhead = f"{(t.best - executor) / STEPS * 1000:.2f}" if name.startswith("millrace") else ""
        out.rows.append([name, f"{t.best:.3f}", f"{t.median:.3f}", f"{t.best / STEPS * 1000:.2f}",
                         ratio(t.best, shell), ratio(t.best, executor), overhead])
    for name in (MODULES, LOOP):
        best = timings[name].best
        out.target(best < TARGET_S, f"{name}: {best:.3f} s for the whole flow, target < {TARGET_S} s")
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    print(section(parser.parse_args().rounds).markdown())
