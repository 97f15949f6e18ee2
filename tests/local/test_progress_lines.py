"""What `millrace run` prints as a run goes, when its output is not a terminal: a line per step start and end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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


def test_each_iteration_step_is_shown_ending_even_once_its_iteration_is_compacted(tmp_path: Path) -> None:
    flow = tmp_path / "loop.yaml"
    flow.write_text(LOOP)
    done = subprocess.run([sys.executable, "-m", "millrace.cli.main", "run", str(flow)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    for index in range(3):
        assert f"▶ l/{index}/x running" in lines, lines
        assert any(line.startswith(f"✓ l/{index}/x succeeded (") for line in lines), lines
    assert any(line.startswith("✓ l succeeded (") for line in lines), lines
