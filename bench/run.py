"""Run the benchmarks and write docs/benchmarks.md (`make bench`).

    python bench/run.py                          everything, default rounds
    python bench/run.py --only local --rounds 2  a subset, fewer rounds
    python bench/run.py --print                  print, leave the document alone

--only takes local (the flow in process and through the CLI), planner (a long
loop, the planner alone), expressions,
executor, cluster (the 40-step chain and the concurrent runs), fleet (1,000
FlowRuns alive at once) and fleet-loop (a 2,000-item loop in the cluster);
repeatable.
A subset replaces only its own tables in docs/benchmarks.md: each table sits
between markers, and the others are kept as they were from their last run.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

from common import REPO, ROUNDS, Section, machine_facts

DOC = REPO / "docs" / "benchmarks.md"
GROUPS = ("local", "planner", "expressions", "executor", "cluster", "fleet", "fleet-loop")
ORDER = ("local", "cli", "planner", "expressions", "executor", "cluster-chain", "cluster-fanout",
         "fleet-live", "fleet-loop")  # tables in the document


def _local(args: argparse.Namespace) -> list[Section]:
    import cli_bench
    import flow_bench

    return [flow_bench.section(args.rounds), cli_bench.section(args.rounds)]


def _planner(args: argparse.Namespace) -> list[Section]:
    import planner_bench

    return [planner_bench.section(min(args.rounds, 3))]


def _expressions(args: argparse.Namespace) -> list[Section]:
    import expressions_bench

    return [expressions_bench.section(seconds=1.0 if args.rounds >= ROUNDS else 0.5, rounds=args.rounds)]


def _executor(args: argparse.Namespace) -> list[Section]:
    import executor_bench

    return [executor_bench.section(args.rounds)]


def _cluster(args: argparse.Namespace) -> list[Section]:
    import cluster_bench

    return cluster_bench.sections(rounds=min(args.rounds, 3), runs=args.runs, only={"chain", "fanout"})


def _fleet(args: argparse.Namespace) -> list[Section]:
    import fleet_bench

    return fleet_bench.sections({"live"}, runs=args.live_runs)


def _fleet_loop(args: argparse.Namespace) -> list[Section]:
    import fleet_bench

    return fleet_bench.sections({"loop"}, items=args.loop_items, baseline_items=args.loop_baseline)


RUNNERS: dict[str, Callable[[argparse.Namespace], list[Section]]] = {
    "local": _local, "planner": _planner, "expressions": _expressions, "executor": _executor, "cluster": _cluster,
    "fleet": _fleet, "fleet-loop": _fleet_loop,
}

INTRO = """# Benchmarks

Written by `make bench` (`bench/run.py`); do not edit the tables by hand.
Every figure sits beside a baseline measured in the same run, and speed is
read as the ratio between them, never as an absolute time in a test. The
machine is small and shared (other builds and tests may run beside the
benchmarks), so each row is the best of several rounds with the median
beside it: the best is the least disturbed, the median shows the noise.
Run a subset with `.venv/bin/python bench/run.py --only local|planner|expressions|executor|cluster|fleet|fleet-loop`
(repeatable) and fewer rounds with `--rounds N`; a subset rewrites only its
own tables below.
"""


def _marker(key: str, end: bool = False) -> str:
    return f"<!-- bench:{'/' if end else ''}{key} -->"


def _blocks(text: str) -> dict[str, str]:
    """The tables of an existing document, by key."""
    pattern = re.compile(r"<!-- bench:([\w-]+) -->\n(.*?)\n<!-- bench:/\1 -->", re.S)
    return {match[1]: match[2] for match in pattern.finditer(text)}


def _notes(text: str) -> str:
    """Hand-written notes after the tables are kept across runs."""
    head, found, tail = text.partition("<!-- notes -->")
    return found + tail if found else "<!-- notes -->\n\n## Notes\n"


def write(sections: list[Section], facts: list[str], seconds: float) -> None:
    old = DOC.read_text() if DOC.exists() else ""
    blocks = _blocks(old)
    stamp = f"_Measured {facts[0].removeprefix('- date: ')}; {seconds:.0f} s for this group of tables._"
    for found in sections:
        blocks[found.key] = f"{found.markdown()}\n\n{stamp}"
    body = [INTRO, "## Machine", "", *facts, "", "## Tables", ""]
    for key in ORDER:
        if key in blocks:
            body += [_marker(key), blocks[key], _marker(key, end=True), ""]
    body.append(_notes(old))
    DOC.write_text("\n".join(body).rstrip() + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=GROUPS, action="append", help="run this group only (repeatable)")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help=f"rounds per row (default {ROUNDS}; cluster at most 3)")
    parser.add_argument("--runs", type=int, default=100, help="concurrent FlowRuns in the cluster benchmark")
    parser.add_argument("--live-runs", type=int, default=1000, help="FlowRuns alive at once in the fleet benchmark")
    parser.add_argument("--loop-items", type=int, default=2000, help="items of the loop in the fleet-loop benchmark")
    parser.add_argument("--loop-baseline", type=int, default=200, help="items of its baseline loop")
    parser.add_argument("--print", action="store_true", help="print the tables instead of writing docs/benchmarks.md")
    args = parser.parse_args(argv)
    facts = machine_facts()
    started = time.perf_counter()
    sections: list[Section] = []
    for group in args.only or GROUPS:
        print(f"bench: {group} ...", file=sys.stderr, flush=True)
        group_started = time.perf_counter()
        found = RUNNERS[group](args)
        sections += found
        if not args.print:
            # After each group: a later group that fails or is stopped loses nothing already measured.
            write(found, facts, time.perf_counter() - group_started)
    seconds = time.perf_counter() - started
    if args.print:
        print("\n".join(facts), *(s.markdown() for s in sections), sep="\n\n")
    else:
        print(f"bench: wrote {DOC.relative_to(REPO)} ({seconds:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
