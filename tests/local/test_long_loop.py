"""A 10,000-item parallel loop through `millrace run`: it completes, and the run record stays compact
(finished iterations leave the run state; only the loop's results remain)."""

from __future__ import annotations

import json

import pytest
from cli_shell import Shell

ITEMS = 10_000
RECORD_LIMIT = 256 * 1024

FLOW = f"""
summary: a long parallel loop
value:
  modules:
    - id: l
      value:
        type: forloopflow
        parallel: true
        parallelism: {{type: static, value: 50}}
        skip_failures: false
        iterator: {{type: javascript, expr: "Array.from({{length: {ITEMS}}}, (_, i) => i)"}}
        modules:
          - id: x
            value:
              type: rawscript
              language: bash
              content: |
                v="$1"
                echo "$v"
              input_transforms:
                v: {{type: javascript, expr: flow_input.iter.index}}
    - id: total
      value:
        type: rawscript
        language: python3
        content: |
          def main(l: list):
              return {{"n": len(l), "sum": sum(int(v) for v in l)}}
        input_transforms:
          l: {{type: javascript, expr: results.l}}
"""


# 10,000 step processes on a small shared machine: a guard against a hang, not a measure of speed.
@pytest.mark.timeout(1200)
def test_a_ten_thousand_item_parallel_loop_completes_with_a_compact_record(shell: Shell) -> None:
    outcome = shell("run", shell.flow("long-loop", FLOW), "--output", "json")
    assert outcome.code == 0, outcome.err
    assert outcome.json()["result"] == {"n": ITEMS, "sum": ITEMS * (ITEMS - 1) // 2}
    [record] = list((shell.home / "runs").glob("*/run.json"))
    assert record.stat().st_size < RECORD_LIMIT
    steps = json.loads(record.read_text())["status"]["steps"]
    assert set(steps) == {"l", "total"}
