"""Expression evaluations per second, against baselines measured in the same run.

    python bench/expressions_bench.py [--seconds 1.0] [--rounds 5] [--json]

Rows: the sandbox on a typical input transform (fast path, the default where
mini-racer allows it, and mini-racer's public API), a no-op mini-racer `eval`
(the floor of the public API), and Python's own `eval` of the equivalent
expression (no sandbox at all).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

from common import ROUNDS, Section
from py_mini_racer import MiniRacer

from millrace.expressions import EvalContext, Sandbox

EXPR = "results.a.x + flow_input.y"
CONTEXT = EvalContext(
    flow_input={"y": 2, "name": "Ada", "tags": ["a", "b"]},
    results={"a": {"x": 1, "rows": [1, 2, 3]}, "b": {"unused": True}},
    previous_result={"x": 1},
)
TARGET = 5000  # issue 2: input-transform evaluations per second
FAST = "sandbox, fast path (the engine's default)"
PUBLIC = "sandbox, mini-racer public API"
NOOP = "baseline: no-op MiniRacer.eval with timeout"


def rate(fn: Callable[[], object], seconds: float) -> float:
    """Calls per second of `fn` over about `seconds`."""
    calls, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(100):
            fn()
        calls += 100
    return calls / elapsed


def rates(fn: Callable[[], object], seconds: float, rounds: int) -> tuple[float, float]:
    """(best, median) rate over `rounds` windows of `seconds` each, after a warm-up."""
    for _ in range(50):
        fn()
    window = [rate(fn, seconds / rounds) for _ in range(rounds)]
    return max(window), statistics.median(window)


def measure(seconds: float, rounds: int = ROUNDS) -> dict[str, tuple[float, float]]:
    out: dict[str, tuple[float, float]] = {}
    for name, fast in [(FAST, True), (PUBLIC, False)]:
        with Sandbox(fast_path=fast) as box:
            assert box.evaluate(EXPR, CONTEXT) == 3
            out[name] = rates(lambda box=box: box.evaluate(EXPR, CONTEXT), seconds, rounds)
    racer = MiniRacer()
    out[NOOP] = rates(lambda: racer.eval("0", timeout_sec=1.0), seconds, rounds)
    racer.close()
    code = compile("results['a']['x'] + flow_input['y']", "<bench>", "eval")
    scope = {"results": dict(CONTEXT.results), "flow_input": dict(CONTEXT.flow_input)}
    out["baseline: Python eval"] = rates(lambda: eval(code, {}, scope), seconds, rounds)
    return out


def section(seconds: float = 1.0, rounds: int = ROUNDS) -> Section:
    measured = measure(seconds, rounds)
    noop = measured[NOOP][0]
    out = Section(
        key="expressions", title="Input transforms: expression evaluations per second",
        how=(f"One typical input transform, `{EXPR}`, evaluated over and over by one `Sandbox` with a context of "
             f"flow input and two earlier results (conversion of the context into the isolate included, as each "
             f"step pays it). Each row: 50 warm-up calls, then {rounds} windows of {seconds / rounds:.2f} s; the "
             f"best window and the median. Baselines in the same run: a no-op `MiniRacer.eval('0')` with a timeout "
             f"(the floor of any evaluation through mini-racer's public API) and Python's `eval` of the same "
             f"expression (no sandbox at all)."),
        header=["what", "best (evaluations/s)", "median (evaluations/s)", "µs per evaluation (best)",
                "vs no-op MiniRacer.eval"],
    )
    for name, (best, median) in measured.items():
        out.rows.append([name, f"{best:,.0f}", f"{median:,.0f}", f"{1e6 / best:.1f}", f"{best / noop:.2f}x"])
    best = measured[FAST][0]
    out.target(best >= TARGET, f"{best:,.0f} evaluations/s through the sandbox, target >= {TARGET:,}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="time per row")
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--json", action="store_true", help="print one JSON object of best rates")
    args = parser.parse_args()
    if args.json:
        print(json.dumps({name: round(best) for name, (best, _) in measure(args.seconds, args.rounds).items()}))
        return
    print(section(args.seconds, args.rounds).markdown())


if __name__ == "__main__":
    main()
