"""Run conformance cases through the cluster shell: a Flow and a FlowRun each, on
one operator, approvals through `kubectl millrace resume/cancel`.

Every case's objects are applied first; then one loop reads all FlowRuns of the
namespace once a second and moves each case on (an action when it suspends,
done when it ends), so the cases run side by side.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .cases import Action, Case, Outcome

TERMINAL = ("Succeeded", "Failed", "Cancelled")


def flow_manifest(case: Case, flow: dict[str, Any] | None = None) -> dict[str, Any]:
    """The case's Flow; `flow`: the flow as a restart case edits it."""
    if case.flow is None:
        return dict(yaml.safe_load(case.example_path.read_text(encoding="utf-8")))
    spec = {"summary": case.name, **(flow or case.flow)}
    return {"apiVersion": "millrace.dev/v1alpha1", "kind": "Flow", "metadata": {"name": case.kube_name}, "spec": spec}


def run_manifest(case: Case) -> dict[str, Any]:
    return {"apiVersion": "millrace.dev/v1alpha1", "kind": "FlowRun", "metadata": {"name": f"{case.kube_name}-1"},
            "spec": {"flowRef": {"name": case.kube_name}, "args": case.args}}


def _outcome(status: dict[str, Any], detail: str = "") -> Outcome:
    return Outcome(status=str(status.get("phase", "")).lower(), result=status.get("result"),
                   error=status.get("error"), detail=detail or json.dumps(status)[-3000:])


def _approval_mark(status: dict[str, Any]) -> str:
    """What an applied approval changes in a suspended run's status."""
    step = status.get("suspendedStep")
    return json.dumps([step, (status.get("steps") or {}).get(step)], sort_keys=True)


@dataclass
class Driver:
    """One case's FlowRun, moved on by what its status says."""

    case: Case
    namespace: str
    pending: list[Action] = field(default_factory=list)
    mark: str | None = None           # the suspended status an action was applied to
    acting: subprocess.Popen[str] | None = None
    outcome: Outcome | None = None
    restarted: bool = False           # the case's restart run (`-2`) is the one followed

    def __post_init__(self) -> None:
        self.pending = list(self.case.actions)

    @property
    def run(self) -> str:
        return f"{self.case.kube_name}-{2 if self.restarted else 1}"

    def _restart(self, kube: Any) -> None:
        """The Flow edited, then a FlowRun restarting the first run from the case's step."""
        restart = self.case.restart
        assert restart is not None
        kube.apply(flow_manifest(self.case, restart.flow), self.namespace)
        kube.apply({"apiVersion": "millrace.dev/v1alpha1", "kind": "FlowRun", "metadata": {"name": f"{self.case.kube_name}-2"},
                    "spec": {"flowRef": {"name": self.case.kube_name},
                             "restartFrom": {"run": self.run, "step": restart.step}}}, self.namespace)
        self.restarted = True

    def observe(self, kube: Any, status: dict[str, Any]) -> None:
        if self.acting is not None:
            if self.acting.poll() is None:
                return
            _, err = self.acting.communicate()
            if self.acting.returncode != 0:
                self.outcome = Outcome(status="action refused", detail=f"{' '.join(self.acting.args)}: {err}")
                return
            self.acting = None
        phase = status.get("phase")
        if phase in TERMINAL and self.case.restart is not None and not self.restarted:
            self._restart(kube)
        elif phase in TERMINAL:
            self.outcome = _outcome(status)
        elif phase == "Suspended" and _approval_mark(status) != self.mark:
            if not self.pending:
                self.outcome = _outcome(status)
                return
            self.mark = _approval_mark(status)
            self.acting = self._act(kube, self.pending.pop(0))

    def _act(self, kube: Any, action: Action) -> subprocess.Popen[str]:
        """`kubectl millrace resume` or `cancel`, left to run while the other cases go on."""
        if action.resume is not None:
            argv = ["resume", self.run, "-n", self.namespace, "--payload", json.dumps(action.resume.payload),
                    "--approver", action.resume.approver]
        elif action.disapprove is not None:
            argv = ["resume", self.run, "-n", self.namespace, "--disapprove", "--approver", action.disapprove.by]
        else:
            assert action.cancel is not None
            argv = ["cancel", self.run, "-n", self.namespace, "--reason", action.cancel.reason, "--by", action.cancel.by]
        return subprocess.Popen([str(Path(sys.executable).parent / "kubectl-millrace"), *argv], text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **kube.env()})


def run_in_cluster(kube: Any, namespace: str, cases: list[Case], timeout: float = 600) -> dict[str, Outcome]:
    """Every case applied as a Flow and a FlowRun, then followed until it ends or suspends with no action left."""
    outcomes: dict[str, Outcome] = {}
    # Two `kubectl apply` for all: one object refused does not stop the others, and its error names it.
    flows = kube.apply([flow_manifest(case) for case in cases], namespace, check=False)
    runs = kube.apply([run_manifest(case) for case in cases], namespace, check=False)
    created = {item["metadata"]["name"] for item in kube.list("flowruns", namespace)}
    drivers: list[Driver] = []
    for case in cases:
        names = (f'"{case.kube_name}"', f'"{case.kube_name}-1"')
        refusals = [line for line in (flows.stderr + runs.stderr).splitlines() if any(n in line for n in names)]
        if refusals or f"{case.kube_name}-1" not in created:
            outcomes[case.name] = Outcome(status="not applied", detail="\n".join(refusals) or runs.stderr)
        else:
            drivers.append(Driver(case, namespace))
    deadline = time.monotonic() + timeout
    statuses: dict[str, dict[str, Any]] = {}
    while drivers and time.monotonic() < deadline:
        try:
            statuses = {item["metadata"]["name"]: item.get("status") or {} for item in kube.list("flowruns", namespace)}
        except subprocess.TimeoutExpired:
            continue  # a loaded API server: ask again
        for driver in drivers:
            driver.observe(kube, statuses.get(driver.run, {}))
        for driver in [d for d in drivers if d.outcome is not None]:
            outcomes[driver.case.name] = driver.outcome
            drivers.remove(driver)
        time.sleep(1)
    for driver in drivers:
        if driver.acting is not None:
            driver.acting.kill()
        status = statuses.get(driver.run, {})
        outcomes[driver.case.name] = Outcome(status="still running", detail=json.dumps(status)[-3000:])
    return outcomes
