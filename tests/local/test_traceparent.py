"""Locally, as in the cluster, each step attempt gets a W3C TRACEPARENT: one trace per run, a span per attempt."""

from __future__ import annotations

import pytest

from cli_shell import Shell
from millrace.telemetry.context import parse_traceparent

pytestmark = pytest.mark.local

FLOW = """summary: traced
value:
  modules:
    - id: a
      value:
        type: rawscript
        language: python3
        input_transforms: {}
        content: |
          import os
          def main():
              return os.environ["TRACEPARENT"]
    - id: b
      value:
        type: rawscript
        language: bash
        input_transforms:
          first: {type: javascript, expr: results.a}
        content: |
          first="$1"
          echo "$first $TRACEPARENT"
"""


def test_each_step_attempt_sees_its_span_in_the_run_trace(shell: Shell) -> None:
    runs = [shell("run", shell.flow("traced", FLOW), "--output", "json").json() for _ in range(2)]
    seen = [[parse_traceparent(part) for part in run["result"].split()] for run in runs]
    for a, b in seen:
        assert a.trace_id == b.trace_id and a.span_id != b.span_id and a.sampled
    assert seen[0][0].trace_id != seen[1][0].trace_id  # a trace per run
