"""The package's type hints hold: mypy, configured in pyproject.toml, finds nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_mypy_finds_no_errors() -> None:
    # Run from the repository so mypy reads [tool.mypy] (files, overrides, .mypy_cache) from pyproject.toml.
    checked = subprocess.run([sys.executable, "-m", "mypy"], cwd=REPO, capture_output=True, text=True)
    assert checked.returncode == 0, f"mypy found type errors:\n{checked.stdout}{checked.stderr}"
