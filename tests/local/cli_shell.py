"""The `millrace` command run in-process against a throwaway MILLRACE_HOME, as a user runs it."""

from __future__ import annotations

import io
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from millrace.cli.main import main

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@dataclass
class Outcome:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@dataclass
class Shell:
    home: Path
    monkeypatch: pytest.MonkeyPatch
    capsys: pytest.CaptureFixture[str]

    def __call__(self, *argv: str | Path, stdin: str | None = None) -> Outcome:
        self.capsys.readouterr()  # drop what came before this command
        if stdin is not None:
            self.monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        code = main([str(arg) for arg in argv])
        out, err = self.capsys.readouterr()
        return Outcome(code, out, err)

    def run(self, flow: str | Path, *argv: str) -> dict[str, Any]:
        """`millrace run FLOW ... --output json`: the outcome document."""
        outcome = self("run", flow, *argv, "--output", "json")
        document = outcome.json()
        document["exit"] = outcome.code
        return document

    def record(self, run_id: str) -> dict[str, Any]:
        """The run record as saved in .millrace/runs/<run id>/run.json."""
        return json.loads((self.home / "runs" / run_id / "run.json").read_text(encoding="utf-8"))["status"]

    def flow(self, name: str, text: str) -> Path:
        """A flow file written for one test."""
        path = self.home.parent / f"{name}.yaml"
        path.write_text(text, encoding="utf-8")
        return path
