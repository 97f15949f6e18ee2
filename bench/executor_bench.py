"""Per-step cost of python3 steps: the fork server against starting python3 each time.

40 steps, each computing a naive fibo(10) in its own process, run back to
back three ways: the executor with its fork server, the executor starting
python3 per step, and bare `python3 -c` subprocesses (the floor for any
runner that starts an interpreter per step). Each way runs 5 rounds and
keeps the best, so a busy neighbour on a small machine blurs less.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "operator"))

from millrace.local.executor import LocalExecutor  # noqa: E402
from millrace.runtime.protocol import StepRequest  # noqa: E402

STEPS = 40
ROUNDS = 5
FIBO = "def fibo(n):\n    return n if n < 2 else fibo(n - 1) + fibo(n - 2)\n\n\ndef main(n):\n    return fibo(n)\n"


def per_step_ms(run_one: Callable[[int], None]) -> float:
    run_one(-1)  # warm up: start the fork server, fill the page cache
    rounds = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for index in range(STEPS):
            run_one(index)
        rounds.append(time.perf_counter() - started)
    return min(rounds) / STEPS * 1000


def executor_runner(executor: LocalExecutor, root: str) -> Callable[[int], None]:
    def run_one(index: int) -> None:
        request = StepRequest(key=f"fibo/{index}", language="python3", code=FIBO, args={"n": 10},
                              workdir=f"{root}/{index}")
        outcome = executor.run(request)
        assert outcome.ok and outcome.result == 55, outcome

    return run_one


def bare_python(index: int) -> None:
    script = FIBO + "\nimport json\nprint(json.dumps(main(10)))\n"
    output = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "55"


def main() -> None:
    with tempfile.TemporaryDirectory() as root:
        with LocalExecutor() as executor:
            forked = per_step_ms(executor_runner(executor, f"{root}/forked"))
        with LocalExecutor(fork_server=False) as executor:
            started = per_step_ms(executor_runner(executor, f"{root}/started"))
    bare = per_step_ms(bare_python)
    print(f"{STEPS} sequential python3 steps computing fibo(10), per step (best of {ROUNDS} rounds):")
    print(f"  executor, fork server          {forked:6.2f} ms")
    print(f"  executor, python3 per step     {started:6.2f} ms")
    print(f"  baseline, bare python3 -c      {bare:6.2f} ms")
    print(f"  fork server speed-up vs bare   {bare / forked:6.1f} x")


if __name__ == "__main__":
    main()
