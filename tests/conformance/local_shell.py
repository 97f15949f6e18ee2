"""Run a conformance case through the local shell: the `millrace` command, as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from .cases import Action, Case, Outcome

MILLRACE = Path(sys.executable).parent / "millrace"


def _command(argv: list[str], home: Path, cwd: Path) -> Outcome:
    """One `millrace ... --output json`; its outcome document in the suite's terms."""
    proc = subprocess.run([str(MILLRACE), *argv, "--output", "json"], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "MILLRACE_HOME": str(home)}, timeout=180)
    detail = f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    try:
        document = json.loads(proc.stdout)
    except json.JSONDecodeError:
        return Outcome(status="no outcome", detail=detail)
    return Outcome(status=str(document.get("phase", document.get("status", ""))).lower(),
                   result=document.get("result"), error=document.get("error"), detail=detail,
                   run=document.get("run", ""))


def _act(action: Action, run_id: str, home: Path, cwd: Path) -> Outcome:
    if action.resume is not None:
        return _command(["resume", run_id, "--payload", json.dumps(action.resume.payload),
                         "--approver", action.resume.approver], home, cwd)
    if action.disapprove is not None:
        return _command(["resume", run_id, "--disapprove", "--approver", action.disapprove.by], home, cwd)
    assert action.cancel is not None
    return _command(["cancel", run_id, "--reason", action.cancel.reason, "--by", action.cancel.by], home, cwd)


def run_locally(case: Case, workdir: Path) -> Outcome:
    """The case's flow run with its args, then each action applied while the run is suspended."""
    workdir.mkdir(parents=True, exist_ok=True)
    home = workdir / "home"
    if case.flow is not None:
        flow = workdir / f"{case.name}.yaml"
        flow.write_text(yaml.safe_dump(case.flow, sort_keys=False), encoding="utf-8")
    else:
        flow = case.example_path
    args = workdir / "args.json"
    args.write_text(json.dumps(case.args), encoding="utf-8")
    outcome = _command(["run", str(flow), "--args-file", str(args)], home, workdir)
    run_id = outcome.run
    for action in case.actions:
        if outcome.status != "suspended":
            break
        outcome = _act(action, run_id, home, workdir)
    if case.restart is not None and outcome.run:
        # The same flow file, edited: the restarted run runs what it holds now.
        flow.write_text(yaml.safe_dump(case.restart.flow, sort_keys=False), encoding="utf-8")
        outcome = _command(["run", str(flow), "--from-run", run_id, "--from", case.restart.step], home, workdir)
    return outcome
