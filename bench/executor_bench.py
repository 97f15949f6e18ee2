"""Per-step cost of python3 steps: the fork server against starting python3 each time.

40 steps, each computing a naive fibo(10) in its own process, run back to
back three ways: the executor with its fork server, the executor starting
python3 per step, and bare `python3 -c` subprocesses (the floor for any
runner that starts an interpreter per step).

    python bench/executor_bench.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from collections.abc import Callable

from common import ROUNDS, Section, Timing, measure, ratio
from flow_bench import FIBO, PYTHON, STEPS

from millrace.local.executor import LocalExecutor
from millrace.runtime.protocol import StepRequest

BARE = "baseline: bare python3 -c per step"


def steps(run_one: Callable[[int], None]) -> Callable[[], None]:
    def once() -> None:
        for index in range(STEPS):
            run_one(index)

    return once


def executor_runner(executor: LocalExecutor, root: str) -> Callable[[int], None]:
    def run_one(index: int) -> None:
        request = StepRequest(key=f"fibo/{index}", language="python3", code=FIBO, args={"n": 10},
                              workdir=f"{root}/{index}")
        outcome = executor.run(request)
        assert outcome.ok and outcome.result == 55, outcome

    return run_one


def bare_python(index: int) -> None:
    script = FIBO + "\nimport json\nprint(json.dumps(main(10)))\n"
    output = subprocess.run([PYTHON, "-c", script], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "55"


def run(rounds: int = ROUNDS) -> dict[str, Timing]:
    out: dict[str, Timing] = {}
    with tempfile.TemporaryDirectory() as root:
        with LocalExecutor() as executor:
            out["executor, fork server (default)"] = measure(steps(executor_runner(executor, f"{root}/forked")), rounds)
        with LocalExecutor(fork_server=False) as executor:
            out["executor, python3 started per step"] = measure(steps(executor_runner(executor, f"{root}/started")), rounds)
    out[BARE] = measure(steps(bare_python), rounds)
    return out


def section(rounds: int = ROUNDS) -> Section:
    timings = run(rounds)
    bare = timings[BARE].best
    out = Section(
        key="executor", title="Executor: per-step cost of a python3 step",
        how=(f"{STEPS} steps computing fibo(10), each in its own process, run back to back by the executor alone "
             f"(no engine): with its fork server, and starting python3 per step. Baseline in the same run: bare "
             f"`python3 -c` subprocesses from Python (the floor for a runner that starts an interpreter per step). "
             f"One warm-up pass, then best and median of {rounds} passes of {STEPS} steps."),
        header=["what", "per step, best (ms)", "per step, median (ms)", "vs bare python3 -c"],
    )
    for name, t in timings.items():
        out.rows.append([name, f"{t.best / STEPS * 1000:.2f}", f"{t.median / STEPS * 1000:.2f}", ratio(t.best, bare)])
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    print(section(parser.parse_args().rounds).markdown())
