"""`kubectl millrace ...` as a user types it: the real kubectl finds the plugin on PATH and it
acts on the cluster of the kubeconfig's current context."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from millrace.cluster.steplogs import LOG_TAIL_BYTES
from millrace.runtime.redact import MASK

from .test_operator import Operator, flow_manifest, labelled, operator, python_step, run_manifest, wait_phase  # noqa: F401

pytestmark = pytest.mark.cluster

BIN = Path(sys.executable).parent


def plugin(kube: Any, *args: str, kubeconfig: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`kubectl millrace ARGS`, with the plugin found on PATH as kubectl finds any plugin."""
    env = {**kube.env(), "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    if kubeconfig is not None:
        env["KUBECONFIG"] = kubeconfig
    return subprocess.run([kube.kubectl_bin, "millrace", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def kubeconfig_in(kube: Any, namespace: str, path: Path) -> str:
    """The test kubeconfig with its current context's namespace set to `namespace`, and a second
    context `other` whose namespace does not exist."""
    config = yaml.safe_load(Path(kube.kubeconfig).read_text())
    current = next(c for c in config["contexts"] if c["name"] == config["current-context"])
    current["context"]["namespace"] = namespace
    config["contexts"].append({"name": "other", "context": {**current["context"], "namespace": "nowhere"}})
    path.write_text(yaml.safe_dump(config))
    return str(path)


def counting_flow(name: str) -> dict[str, Any]:
    hello = python_step("hello", "def main(n: int):\n    print('hello from the step', n)\n    return list(range(n))\n",
                        n="flow_input.n")
    square = python_step("square", "def main(x):\n    print('squaring', x)\n    return x * x\n", x="flow_input.iter.value")
    loop = {"id": "each", "value": {"type": "forloopflow", "iterator": {"type": "javascript", "expr": "results.hello"},
                                    "skip_failures": False, "modules": [square]}}
    total = python_step("total", "def main(xs):\n    return sum(xs)\n", xs="results.each")
    flow = flow_manifest(name, [hello, loop, total])
    flow["spec"]["schema"] = {"type": "object", "properties": {"n": {"type": "integer"}}}
    return flow


def test_help_is_the_plugins_own(kube: Any) -> None:
    done = plugin(kube, "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: kubectl millrace")
    for command in ("run", "retry", "get", "describe", "logs", "resume", "cancel"):
        assert command in done.stdout


def test_run_follow_get_describe_and_logs(kube: Any, namespace: str, operator: Operator, tmp_path: Path) -> None:
    kube.apply(counting_flow("count"), namespace)
    config = kubeconfig_in(kube, namespace, tmp_path / "config")
    # No -n: the namespace is the current context's.
    ran = plugin(kube, "run", "count", "--arg", "n=3", "--follow", kubeconfig=config)
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout) == 5
    lines = ran.stderr.splitlines()
    run = lines[0].removeprefix("flowrun/").removesuffix(" created")
    assert run.startswith("count-"), lines
    # The local run's line-per-change view (an iteration's steps leave the status as it ends:
    # they are seen running).
    for expected in ("▶ hello running", "✓ hello succeeded", "▶ each/0/square running", "▶ each/2/square running",
                     "✓ each succeeded", "✓ total succeeded"):
        assert any(line.startswith(expected) for line in lines), (expected, lines)
    assert lines[-1].startswith(f"run {run} succeeded in ")

    table = plugin(kube, "get", kubeconfig=config)
    assert table.returncode == 0, table.stderr
    header, *rows = table.stdout.splitlines()
    assert header.split() == ["NAME", "FLOW", "PHASE", "STEP", "DURATION", "AGE"]
    assert [row.split()[:4] for row in rows] == [[run, "count", "Succeeded", "-"]]

    described = plugin(kube, "describe", run, "-n", namespace)
    assert described.returncode == 0, described.stderr
    text = described.stdout
    assert f"Name:      {run}" in text and "Phase:     Succeeded" in text and 'Args:      {"n": 3}' in text
    assert "Result:    5" in text
    steps = {line.split()[0]: line.split()[1:] for line in text.split("Steps:\n")[1].splitlines()[1:]}
    assert steps["hello"][:1] == ["succeeded"] and steps["total"][:1] == ["succeeded"]
    assert steps["each"][0] == "succeeded" and "3 iterations" in " ".join(steps["each"])

    # A step's log while its pod is there, and a loop iteration's step by its path.
    hello = plugin(kube, "logs", run, "hello", "-n", namespace)
    assert hello.returncode == 0, hello.stderr
    assert "hello from the step 3" in hello.stdout
    inner = plugin(kube, "logs", run, "each/1/square", "-n", namespace)
    assert "squaring 1" in inner.stdout, inner.stdout + inner.stderr
    every = plugin(kube, "logs", run, "-n", namespace)
    assert "==> hello (attempt 1) <==" in every.stdout and "==> each/2/square (attempt 1) <==" in every.stdout
    missing = plugin(kube, "logs", run, "nope", "-n", namespace)
    assert missing.returncode == 2 and f"flowrun/{run} has no step 'nope'" in missing.stderr

    # --context picks another context, and with it its namespace.
    elsewhere = plugin(kube, "get", "--context", "other", kubeconfig=config)
    assert elsewhere.returncode == 0 and "No runs in namespace nowhere." in elsewhere.stdout, elsewhere.stderr


def test_a_failed_run_exits_1_and_describe_shows_the_error_with_its_stack(kube: Any, namespace: str,
                                                                            operator: Operator) -> None:
    fail = python_step("boom", "def helper():\n    raise ValueError('no luck')\n\ndef main():\n    helper()\n")
    fail["retry"] = {"constant": {"attempts": 1, "seconds": 0}}
    kube.apply(flow_manifest("fails", [fail]), namespace)
    ran = plugin(kube, "run", "fails", "--follow", "--output", "json", "-n", namespace)
    assert ran.returncode == 1, ran.stderr
    outcome = json.loads(ran.stdout)
    assert outcome["phase"] == "Failed" and outcome["error"]["name"] == "ValueError"
    described = plugin(kube, "describe", outcome["run"], "-n", namespace).stdout
    row = next(line for line in described.splitlines() if line.strip().startswith("boom "))
    assert row.split()[1:3] == ["failed", row.split()[2]] and " 2 " in row and "ValueError: no luck" in row
    assert "in helper" in described  # the stack, under the step
    again = plugin(kube, "logs", outcome["run"], "boom", "--attempt", "1", "-n", namespace)
    assert again.returncode == 0 and "no luck" in again.stdout, again.stdout + again.stderr


def test_logs_are_kept_with_the_report_after_the_pod_is_gone(kube: Any, namespace: str, operator: Operator) -> None:
    password = f"pw-{secrets.token_hex(8)}"
    kube.apply(labelled("variable", "f/app/password", {"value": password}, secret=True), namespace)
    # Over the kept bound: 3,000 numbered lines of 40 bytes, then the secret.
    chatty = python_step("chatty", "def main(pw: str):\n    for i in range(3000):\n"
                                   "        print(f'line {i:05d} ' + 'x' * 28)\n    print('the password is', pw)\n"
                                   "    return len(pw)\n", pw="variable('f/app/password')")
    kube.apply(flow_manifest("chatty", [chatty]), namespace)
    ran = plugin(kube, "run", "chatty", "-n", namespace)
    assert ran.returncode == 0, ran.stderr
    run = ran.stdout.strip().removeprefix("flowrun/").removesuffix(" created")
    assert wait_phase(kube, namespace, run)["phase"] == "Succeeded"
    live = plugin(kube, "logs", run, "chatty", "-n", namespace)
    assert "line 00000 " in live.stdout and f"the password is {password}" in live.stdout  # the pod's own log
    kube.kubectl("delete", "jobs", "-n", namespace, "-l", f"millrace.dev/run={run}", "--wait=true")
    kube.wait_for(lambda: not kube.list("pods", namespace, f"millrace.dev/run={run}"), what="the step's pod gone")
    kept = plugin(kube, "logs", run, "chatty", "-n", namespace)
    assert kept.returncode == 0, kept.stderr
    assert "is gone: the end of its log, kept with its report" in kept.stderr
    assert f"the password is {MASK}" in kept.stdout and password not in kept.stdout
    assert "line 02999 " in kept.stdout and "line 00000 " not in kept.stdout
    assert kept.stdout.startswith("line ") and len(kept.stdout.encode()) <= LOG_TAIL_BYTES


def test_retry_runs_the_flow_again_with_the_same_args(kube: Any, namespace: str, operator: Operator) -> None:
    kube.apply(counting_flow("again"), namespace)
    kube.apply(run_manifest("again-1", "again", {"n": 2}), namespace)
    assert wait_phase(kube, namespace, "again-1")["phase"] == "Succeeded"
    retried = plugin(kube, "retry", "again-1", "--follow", "-o", "json", "-n", namespace)
    assert retried.returncode == 0, retried.stderr
    outcome = json.loads(retried.stdout)
    assert outcome["phase"] == "Succeeded" and outcome["result"] == 1 and outcome["run"] != "again-1"
    new = kube.get("flowrun", outcome["run"], namespace)
    assert new["spec"]["flowRef"] == {"name": "again"} and new["spec"]["args"] == {"n": 2}
    assert new["metadata"]["annotations"]["millrace.dev/retry-of"] == "again-1"
    assert "Retry of:  flowrun/again-1" in plugin(kube, "describe", outcome["run"], "-n", namespace).stdout
    nested = plugin(kube, "retry", "again-1", "--from", "each/0/square", "-n", namespace)
    assert nested.returncode == 2 and "--from takes the id of a top-level step" in nested.stderr


def test_retry_from_a_step_reuses_the_results_before_it(kube: Any, namespace: str, operator: Operator) -> None:
    kube.apply(counting_flow("partly"), namespace)
    kube.apply(run_manifest("partly-1", "partly", {"n": 3}), namespace)
    assert wait_phase(kube, namespace, "partly-1")["phase"] == "Succeeded"
    retried = plugin(kube, "retry", "partly-1", "--from", "total", "--follow", "-o", "json", "-n", namespace)
    assert retried.returncode == 0, retried.stderr
    outcome = json.loads(retried.stdout)
    assert outcome["result"] == 5
    new = kube.get("flowrun", outcome["run"], namespace)
    assert new["spec"]["restartFrom"] == {"run": "partly-1", "step": "total"}
    # The steps before `total` were not run again: no Job of the new run for them.
    jobs = [j["metadata"]["name"] for j in kube.list("jobs", namespace, f"millrace.dev/run={outcome['run']}")]
    assert len(jobs) == 1, jobs


def test_resume_and_cancel_act_on_the_current_contexts_namespace(kube: Any, namespace: str, operator: Operator,
                                                                 tmp_path: Path) -> None:
    ask = python_step("ask", "def main():\n    return 'asked'\n")
    ask["suspend"] = {"required_events": 1, "timeout": 600}
    after = python_step("after", "def main(r):\n    return r\n", r="resume")
    kube.apply(flow_manifest("ask", [ask, after]), namespace)
    config = kubeconfig_in(kube, namespace, tmp_path / "config")
    ran = plugin(kube, "run", "ask", "--follow", kubeconfig=config)
    assert ran.returncode == 0, ran.stderr  # a suspended run has not failed, as with `millrace run`
    run = ran.stderr.splitlines()[0].removeprefix("flowrun/").removesuffix(" created")
    assert f"kubectl millrace resume {run}" in ran.stderr
    waiting = plugin(kube, "get", run, kubeconfig=config).stdout.splitlines()[1].split()
    assert waiting[2:4] == ["Suspended", "ask"]
    done = plugin(kube, "resume", run, "--payload", '{"ok": true}', kubeconfig=config)
    assert done.returncode == 0, done.stderr
    assert wait_phase(kube, namespace, run)["result"] == {"ok": True}

    second = plugin(kube, "run", "ask", kubeconfig=config).stdout.strip().removeprefix("flowrun/").removesuffix(" created")
    wait_phase(kube, namespace, second, phases=("Suspended",))
    stopped = plugin(kube, "cancel", second, "--reason", "not now", kubeconfig=config)
    assert stopped.returncode == 0, stopped.stderr
    assert wait_phase(kube, namespace, second)["phase"] == "Cancelled"
    late = plugin(kube, "cancel", second, kubeconfig=config)
    assert late.returncode == 2 and "already ended" in late.stderr
    # `millrace cancel -n` (the local command, aimed at the cluster) makes the same request.
    local = subprocess.run([str(BIN / "millrace"), "cancel", second, "-n", namespace], env={**kube.env()},
                           capture_output=True, text=True, timeout=60)
    assert local.returncode == 2 and "already ended" in local.stderr, local.stdout + local.stderr


def test_logs_follow_streams_each_step_as_it_runs_until_the_run_ends(kube: Any, namespace: str,
                                                                      operator: Operator) -> None:
    slow = python_step("slow", "import time\n\ndef main():\n    print('first', flush=True)\n    time.sleep(3)\n"
                               "    print('second')\n")
    after = python_step("after", "def main():\n    print('after it')\n")
    kube.apply(flow_manifest("slow", [slow, after]), namespace)
    ran = plugin(kube, "run", "slow", "-n", namespace)
    run = ran.stdout.strip().removeprefix("flowrun/").removesuffix(" created")
    followed = plugin(kube, "logs", run, "--follow", "-n", namespace)
    assert followed.returncode == 0, followed.stderr
    assert followed.stdout.splitlines() == ["==> slow (attempt 1) <==", "first", "second",
                                            "==> after (attempt 1) <==", "after it"]
    assert kube.get("flowrun", run, namespace)["status"]["phase"] == "Succeeded"
