"""What `millrace run` prints as a run goes, when its output is not a terminal: a line per step start and end."""

from __future__ import annotations

from cli_shell import Shell

LOOP = """
summary: three iterations
value:
  modules:
    - id: l
      value:
        type: forloopflow
        parallel: true
        iterator: {type: javascript, expr: "[1, 2, 3]"}
        modules:
          - id: x
            value: {type: rawscript, language: bash, content: "echo hi", input_transforms: {}}
"""


def test_each_iteration_step_is_shown_ending_even_once_its_iteration_is_compacted(shell: Shell) -> None:
    outcome = shell("run", shell.flow("loop", LOOP))
    assert outcome.code == 0, outcome.err
    lines = outcome.err.splitlines()
    for index in range(3):
        assert f"▶ l/{index}/x running" in lines, lines
        assert any(line.startswith(f"✓ l/{index}/x succeeded (") for line in lines), lines
    assert any(line.startswith("✓ l succeeded (") for line in lines), lines
