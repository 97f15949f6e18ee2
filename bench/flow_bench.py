"""Windmill's published benchmark, run here: 40 sequential Python steps, each a
naive fibo(10) in its own process.

Two shapes of the same work: a flow of 40 modules, and a for loop of 40
iterations over one script. Baselines measured in the same run: the same 40
scripts run back to back by a plain shell loop (`python3 -c`, one process
each), and the executor alone (40 steps with no engine around them), so the
difference is the engine's own per-step overhead.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "operator"))

from millrace.local.executor import LocalExecutor  # noqa: E402
from millrace.local.runner import LocalRun  # noqa: E402
from millrace.local.store import RunStore  # noqa: E402
from millrace.model.loader import load_flow_document  # noqa: E402
from millrace.runtime.protocol import StepRequest  # noqa: E402

STEPS = 40
ROUNDS = 5
FIBO = "def fibo(n):\n    return n if n < 2 else fibo(n - 1) + fibo(n - 2)\n\n\ndef main(n: int):\n    return fibo(n)\n"


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


@dataclass
class Timing:
    best: float
    median: float


def measure(fn: Callable[[], None], rounds: int = ROUNDS) -> Timing:
    fn()  # warm up: fork server, page cache, expression compilation
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return Timing(min(times), statistics.median(times))


def shell_loop() -> None:
    script = FIBO + "\nimport json\nprint(json.dumps(main(10)))\n"
    subprocess.run(["bash", "-c", f'for i in $(seq {STEPS}); do python3 -c "$0" >/dev/null; done', script], check=True)


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


def run() -> dict[str, Timing]:
    with tempfile.TemporaryDirectory() as root, LocalExecutor() as executor:
        store = RunStore(Path(root) / "home")
        return {
            "shell loop of python3 -c (baseline)": measure(shell_loop),
            "executor alone, 40 steps (baseline)": measure(executor_only(executor, f"{root}/plain")),
            "millrace: 40 modules": measure(run_flow(sequential_flow(), executor, store)),
            "millrace: for loop of 40": measure(run_flow(loop_flow(), executor, store)),
        }


def report(timings: dict[str, Timing]) -> list[str]:
    baseline = timings["shell loop of python3 -c (baseline)"].best
    executor = timings["executor alone, 40 steps (baseline)"].best
    lines = ["| what | best of 5 (s) | median (s) | per step (ms) | vs shell loop | engine overhead per step (ms) |",
             "|---|---|---|---|---|---|"]
    for name, t in timings.items():
        overhead = f"{(t.best - executor) / STEPS * 1000:.2f}" if name.startswith("millrace") else ""
        lines.append(f"| {name} | {t.best:.3f} | {t.median:.3f} | {t.best / STEPS * 1000:.2f} | "
                     f"{t.best / baseline:.2f}x | {overhead} |")
    return lines


if __name__ == "__main__":
    print("\n".join(report(run())))
