"""Expression evaluations per second, against baselines measured in the same run.

    python bench/expressions_bench.py [--seconds 1.0] [--json]

Rows: the sandbox on a typical input transform (fast path and mini-racer's
public API), a no-op mini-racer `eval` (the floor of the public API), and
Python's own `eval` of the equivalent expression (no sandbox at all).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

from py_mini_racer import MiniRacer

from millrace.expressions import EvalContext, Sandbox

EXPR = "results.a.x + flow_input.y"
CONTEXT = EvalContext(
    flow_input={"y": 2, "name": "Ada", "tags": ["a", "b"]},
    results={"a": {"x": 1, "rows": [1, 2, 3]}, "b": {"unused": True}},
    previous_result={"x": 1},
)


def rate(fn: Callable[[], object], seconds: float) -> float:
    """Calls per second of `fn`, after a warm-up."""
    for _ in range(50):
        fn()
    calls, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(100):
            fn()
        calls += 100
    return calls / elapsed


def measure(seconds: float) -> dict[str, float]:
    rates: dict[str, float] = {}
    for name, fast in [("sandbox (fast path)", True), ("sandbox (public API)", False)]:
        with Sandbox(fast_path=fast) as box:
            assert box.evaluate(EXPR, CONTEXT) == 3
            rates[name] = rate(lambda box=box: box.evaluate(EXPR, CONTEXT), seconds)
    racer = MiniRacer()
    rates["baseline: no-op MiniRacer.eval with timeout"] = rate(
        lambda: racer.eval("0", timeout_sec=1.0), seconds
    )
    racer.close()
    code = compile("results['a']['x'] + flow_input['y']", "<bench>", "eval")
    scope = {"results": dict(CONTEXT.results), "flow_input": dict(CONTEXT.flow_input)}
    rates["baseline: Python eval"] = rate(lambda: eval(code, {}, scope), seconds)
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    rates = measure(args.seconds)
    if args.json:
        print(json.dumps({name: round(value) for name, value in rates.items()}))
        return
    print(f"expression: {EXPR}")
    for name, value in rates.items():
        print(f"{name:45s} {value:>10,.0f} evaluations/s  {1e6 / value:8.1f} µs")


if __name__ == "__main__":
    main()
