"""The operator against the real control plane: Flows and FlowRuns applied
with kubectl as a user would, each step a Job run by the node agent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from millrace.cluster.names import child_run_name, job_name, report_name, shared_claim_name, step_secret_name

from .conftest import Operator, installed_operator, millrace_cli, service_account_kubeconfig

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def operator(kube: Any, helm: Any, namespace: str, tmp_path: Path) -> Iterator[Operator]:
    with installed_operator(kube, helm, namespace, tmp_path) as op:
        yield op


def flow_manifest(name: str, modules: list[dict[str, Any]], **value: Any) -> dict[str, Any]:
    return {"apiVersion": "millrace.dev/v1alpha1", "kind": "Flow", "metadata": {"name": name},
            "spec": {"summary": name, "value": {"modules": modules, **value}}}


def run_manifest(name: str, flow: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"apiVersion": "millrace.dev/v1alpha1", "kind": "FlowRun", "metadata": {"name": name},
            "spec": {"flowRef": {"name": flow}, "args": args or {}}}


def python_step(step_id: str, code: str, **transforms: str) -> dict[str, Any]:
    return {"id": step_id, "value": {"type": "rawscript", "language": "python3", "content": code,
                                     "input_transforms": {k: {"type": "javascript", "expr": v} for k, v in transforms.items()}}}


def wait_phase(kube: Any, namespace: str, run: str, phases: tuple[str, ...] = ("Succeeded", "Failed", "Cancelled"),
               timeout: float = 90) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        obj = kube.get("flowrun", run, namespace)
        status = (obj or {}).get("status") or {}
        return status if status.get("phase") in phases else None

    return kube.wait_for(done, timeout=timeout, what=f"FlowRun {run} in {phases}")


def test_a_flow_applied_with_kubectl_runs_its_steps_as_jobs(kube: Any, namespace: str, operator: Operator) -> None:
    flow = flow_manifest("wired", [
        python_step("double", "def main(x: int):\n    return {'v': x * 2}\n", x="flow_input.x"),
        {"id": "shout", "value": {"type": "rawscript", "language": "bash", "content": 'v="$1"\necho "value $v"\n',
                                  "input_transforms": {"v": {"type": "javascript", "expr": "results.double.v"}}}},
    ])
    kube.apply(flow, namespace)
    kube.apply(run_manifest("wired-1", "wired", {"x": 21}), namespace)
    status = wait_phase(kube, namespace, "wired-1")
    assert status["phase"] == "Succeeded", status
    assert status["result"] == "value 42"
    assert status["steps"]["double"]["result"] == {"v": 42}
    jobs = kube.list("jobs", namespace, "millrace.dev/run=wired-1")
    assert sorted(j["metadata"]["name"] for j in jobs) == sorted([job_name("wired-1", "double", 1), job_name("wired-1", "shout", 1)])
    assert all(j["metadata"]["ownerReferences"][0]["kind"] == "FlowRun" for j in jobs)
    columns = kube.kubectl("get", "flowruns", "-n", namespace).stdout
    assert "wired-1" in columns and "Succeeded" in columns
    events = kube.kubectl("get", "events", "-n", namespace, "--field-selector", "involvedObject.name=wired-1",
                          "-o", "jsonpath={.items[*].reason}").stdout.split()
    # One Event per step outcome, one for the run's.
    assert sorted(events) == ["RunSucceeded", "StepSucceeded", "StepSucceeded"], events
    assert all(j["spec"]["ttlSecondsAfterFinished"] == 3600 for j in jobs)
    # Each attempt is one Secret (its files, token and Job manifest), marked once its Job exists.
    secrets = kube.list("secrets", namespace, "millrace.dev/run=wired-1,millrace.dev/kind=step")
    assert sorted(s["metadata"]["name"] for s in secrets) == sorted([step_secret_name("wired-1", "double", 1),
                                                                    step_secret_name("wired-1", "shout", 1)])
    assert all(s["metadata"]["annotations"]["millrace.dev/job-created"] == "true" for s in secrets)
    assert kube.list("configmaps", namespace, "millrace.dev/run=wired-1,millrace.dev/kind=step") == []
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{operator.metrics_port}/metrics").read().decode()
    assert 'millrace_step_attempts_total{outcome="succeeded"} 2.0' in metrics and "millrace_step_attempt_duration_seconds_bucket" in metrics


def test_a_failing_step_fails_the_run_with_its_traceback(kube: Any, namespace: str, operator: Operator) -> None:
    kube.apply(flow_manifest("boom", [python_step("explode", "def main():\n    raise ValueError('no good')\n")]), namespace)
    kube.apply(run_manifest("boom-1", "boom"), namespace)
    status = wait_phase(kube, namespace, "boom-1")
    assert status["phase"] == "Failed"
    assert status["error"]["name"] == "ValueError" and status["error"]["step_id"] == "explode"
    assert "no good" in status["error"]["stack"]
    finished = next(c for c in status["conditions"] if c["type"] == "Succeeded")
    assert finished["reason"] == "Failed" and "no good" in finished["message"]
    # Failed in Kubernetes' terms too: the pod exited non-zero, its Job is Failed, its log has the traceback.
    job = next(iter(kube.list("jobs", namespace, "millrace.dev/run=boom-1")))["metadata"]["name"]
    assert kube.job_condition(namespace, job) == "Failed"
    pod = kube.list("pods", namespace, f"job-name={job}")[0]
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 1, terminated
    log = kube.logs(namespace, pod["metadata"]["name"])
    assert "Traceback" in log and "ValueError: no good" in log, log
    # No deadline: the step may wait for the operator to take its report as long as it runs.
    env = {e["name"]: e.get("value") for e in kube.get("job", job, namespace)["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MILLRACE_API_RETRY_S"] == str(365 * 24 * 3600)


def test_a_failing_bash_step_fails_its_job_with_the_exit_code(kube: Any, namespace: str, operator: Operator) -> None:
    step = {"id": "sh", "value": {"type": "rawscript", "language": "bash", "content": "echo trying\nexit 3\n",
                                  "input_transforms": {}}, "timeout": 60}
    kube.apply(flow_manifest("shfail", [step]), namespace)
    kube.apply(run_manifest("shfail-1", "shfail"), namespace)
    status = wait_phase(kube, namespace, "shfail-1")
    assert status["phase"] == "Failed" and "exit code for \"bash run\": 3" in status["error"]["message"], status
    job = next(iter(kube.list("jobs", namespace, "millrace.dev/run=shfail-1")))
    assert kube.job_condition(namespace, job["metadata"]["name"]) == "Failed"
    pod = kube.list("pods", namespace, f"job-name={job['metadata']['name']}")[0]
    assert pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 3
    env = {e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MILLRACE_API_RETRY_S"] == str(job["spec"]["activeDeadlineSeconds"])


def test_loops_and_branches_run_in_the_cluster(kube: Any, namespace: str, operator: Operator) -> None:
    loop = {"id": "each", "value": {"type": "forloopflow", "parallel": True, "skip_failures": False,
                                    "iterator": {"type": "javascript", "expr": "[1, 2, 3]"},
                                    "modules": [python_step("sq", "def main(v):\n    return v * v\n", v="flow_input.iter.value")]}}
    branch = {"id": "pick", "value": {"type": "branchone", "default": [],
                                      "branches": [{"expr": "results.each.length == 3",
                                                    "modules": [python_step("sum", "def main(xs):\n    return sum(xs)\n", xs="results.each")]}]}}
    kube.apply(flow_manifest("shapes", [loop, branch]), namespace)
    kube.apply(run_manifest("shapes-1", "shapes"), namespace)
    status = wait_phase(kube, namespace, "shapes-1")
    assert status["phase"] == "Succeeded", status
    assert status["result"] == 14
    # A finished iteration is compacted into its loop: its result stays, its steps' states go.
    assert status["steps"]["each"]["result"] == [1, 4, 9] and "each/2/sq" not in status["steps"]


def test_a_run_pins_its_flow(kube: Any, namespace: str, operator: Operator) -> None:
    slow = python_step("wait", "import time\n\ndef main():\n    time.sleep(2)\n    return 'first version'\n")
    kube.apply(flow_manifest("pinned", [slow]), namespace)
    kube.apply(run_manifest("pinned-1", "pinned"), namespace)
    wait_phase(kube, namespace, "pinned-1", phases=("Running",))
    kube.apply(flow_manifest("pinned", [python_step("wait", "def main():\n    return 'second version'\n")]), namespace)
    status = wait_phase(kube, namespace, "pinned-1")
    assert status["result"] == "first version"


def test_a_flowrun_for_a_missing_flow_fails_clearly(kube: Any, namespace: str, operator: Operator) -> None:
    kube.apply(run_manifest("orphan-1", "no-such-flow"), namespace)
    status = wait_phase(kube, namespace, "orphan-1")
    assert status["phase"] == "Failed"
    assert "Flow 'no-such-flow' not found" in status["error"]["message"]


def test_killing_the_operator_during_a_step_loses_nothing(kube: Any, namespace: str, operator: Operator) -> None:
    steps = [python_step("one", "import time\n\ndef main():\n    time.sleep(2)\n    return 1\n"),
             python_step("two", "def main(x):\n    return x + 1\n", x="results.one")]
    kube.apply(flow_manifest("crash", steps), namespace)
    kube.apply(run_manifest("crash-1", "crash"), namespace)
    wait_phase(kube, namespace, "crash-1", phases=("Running",))
    kube.wait_for(lambda: kube.list("jobs", namespace, "millrace.dev/run=crash-1"), what="the first Job")
    operator.kill()
    time.sleep(3)  # the step reports while no operator runs... and its report is refused or kept
    operator.start()
    status = wait_phase(kube, namespace, "crash-1")
    assert status["phase"] == "Succeeded", status
    assert status["result"] == 2
    jobs = kube.list("jobs", namespace, "millrace.dev/run=crash-1")
    assert sorted(j["metadata"]["name"] for j in jobs) == sorted([job_name("crash-1", "one", 1), job_name("crash-1", "two", 1)])


def test_deleting_a_run_deletes_its_objects(kube: Any, namespace: str, operator: Operator) -> None:
    kube.apply(flow_manifest("gc", [python_step("a", "def main():\n    return 1\n")]), namespace)
    kube.apply(run_manifest("gc-1", "gc"), namespace)
    wait_phase(kube, namespace, "gc-1")
    kube.kubectl("delete", "flowrun", "gc-1", "-n", namespace)
    kube.wait_for(lambda: not kube.list("jobs", namespace, "millrace.dev/run=gc-1")
                  and not kube.list("configmaps", namespace, "millrace.dev/run=gc-1")
                  and not kube.list("secrets", namespace, "millrace.dev/run=gc-1"), what="garbage collection")


def test_status_holds_user_state_and_results_json(kube: Any, namespace: str, operator: Operator) -> None:
    code = "import wmill\n\ndef main():\n    wmill.set_flow_user_state('foobar', 43)\n    return wmill.get_flow_user_state('foobar')\n"
    kube.apply(flow_manifest("userstate", [python_step("s", code)]), namespace)
    kube.apply(run_manifest("userstate-1", "userstate"), namespace)
    status = wait_phase(kube, namespace, "userstate-1")
    assert status["phase"] == "Succeeded", status
    assert status["result"] == 43
    assert status["userState"] == {"foobar": 43}
    assert json.dumps(status)


def test_flows_report_ready_and_runs_show_their_start(kube: Any, namespace: str, operator: Operator) -> None:
    kube.apply(flow_manifest("good", [python_step("a", "def main():\n    return 1\n")]), namespace)
    typo = {**python_step("a", "def main():\n    return 1\n"), "retry": {"constant": {"atempts": 3}}}
    kube.apply(flow_manifest("bad", [typo]), namespace)

    def ready(name: str) -> dict[str, Any] | None:
        conditions = ((kube.get("flow", name, namespace) or {}).get("status") or {}).get("conditions") or []
        return next((c for c in conditions if c["type"] == "Ready"), None)

    good = kube.wait_for(lambda: ready("good"), what="the Ready condition")
    bad = kube.wait_for(lambda: ready("bad"), what="the Ready condition")
    assert good["status"] == "True" and good["observedGeneration"] == 1
    assert bad["status"] == "False" and "field 'retry.constant.atempts': unknown field" in bad["message"]
    # kstatus: an invalid flow is Stalled until its spec changes; neither flow is Reconciling.
    stalled = {name: {c["type"]: c["status"] for c in kube.get("flow", name, namespace)["status"]["conditions"]}
               for name in ("good", "bad")}
    assert stalled == {"good": {"Ready": "True", "Reconciling": "False", "Stalled": "False"},
                       "bad": {"Ready": "False", "Reconciling": "False", "Stalled": "True"}}
    kube.apply(run_manifest("good-1", "good"), namespace)
    status = wait_phase(kube, namespace, "good-1")
    assert status["startTime"].endswith("Z")
    # `kubectl wait` reads the conditions as Flux and kpt do.
    kube.kubectl("wait", "--for=condition=Succeeded", "--timeout=30s", "flowrun/good-1", "-n", namespace)
    kube.kubectl("wait", "--for=condition=Ready", "--timeout=30s", "flowrun/good-1", "-n", namespace)
    assert "good-1" in kube.kubectl("get", "flowruns", "-n", namespace).stdout


def approval_flow(name: str) -> dict[str, Any]:
    ask = python_step("ask", "def main():\n    return 'asked'\n")
    ask["suspend"] = {"required_events": 1, "timeout": 600}
    after = python_step("after", "def main(r, who):\n    return {'r': r, 'who': who}\n", r="resume", who="approvers")
    return flow_manifest(name, [ask, after])


def test_a_suspended_run_holds_no_pod_and_resumes_with_kubectl_millrace(kube: Any, namespace: str, operator: Operator) -> None:
    kube.apply(approval_flow("approve"), namespace)
    kube.apply(run_manifest("approve-1", "approve"), namespace)
    status = wait_phase(kube, namespace, "approve-1", phases=("Suspended",))
    assert status["suspendedStep"] == "ask" and status["currentStep"] == "ask"
    pods = kube.list("pods", namespace, "millrace.dev/run=approve-1")
    assert all(p["status"]["phase"] in ("Succeeded", "Failed") for p in pods)
    early = millrace_cli(kube, "resume", "approve-1", "-n", namespace, "--payload", "{\"ok\": true}", "--approver", "ann")
    assert early.returncode == 0, early.stderr
    status = wait_phase(kube, namespace, "approve-1")
    assert status["phase"] == "Succeeded", status
    assert status["result"] == {"r": {"ok": True}, "who": ["ann"]}
    again = millrace_cli(kube, "resume", "approve-1", "-n", namespace)
    assert again.returncode == 2 and "already ended" in again.stderr


def test_cancelling_a_run_stops_its_jobs(kube: Any, namespace: str, operator: Operator) -> None:
    kube.apply(flow_manifest("long", [python_step("sleep", "import time\n\ndef main():\n    time.sleep(60)\n")]), namespace)
    kube.apply(run_manifest("long-1", "long"), namespace)
    kube.wait_for(lambda: [p for p in kube.list("pods", namespace, "millrace.dev/run=long-1")
                           if p["status"].get("phase") == "Running"], what="a running step pod")
    kube.kubectl("patch", "flowrun", "long-1", "-n", namespace, "--type=merge", "-p", '{"spec": {"cancel": true}}')
    status = wait_phase(kube, namespace, "long-1")
    assert status["phase"] == "Cancelled"
    kube.wait_for(lambda: not kube.list("jobs", namespace, "millrace.dev/run=long-1"), what="the Job deleted")


def test_cancel_from_the_cli(kube: Any, namespace: str, operator: Operator) -> None:
    kube.apply(approval_flow("deny"), namespace)
    kube.apply(run_manifest("deny-1", "deny"), namespace)
    wait_phase(kube, namespace, "deny-1", phases=("Suspended",))
    done = millrace_cli(kube, "cancel", "deny-1", "-n", namespace, "--reason", "not today", "--by", "bob")
    assert done.returncode == 0, done.stderr
    status = wait_phase(kube, namespace, "deny-1")
    assert status["phase"] == "Cancelled" and "not today" in status["error"]["message"] and "bob" in status["error"]["message"]


def labelled(kind: str, path: str, data: dict[str, str], secret: bool = False) -> dict[str, Any]:
    from millrace.cluster.names import path_name

    return {"apiVersion": "v1", "kind": "Secret" if secret else "ConfigMap",
            "metadata": {"name": path_name(path), "labels": {"millrace.dev/kind": kind},
                         "annotations": {"millrace.dev/path": path}},
            ("stringData" if secret else "data"): data}


def test_variables_resources_scripts_and_inner_flows_come_from_the_namespace(kube: Any, namespace: str, operator: Operator) -> None:
    kube.apply(labelled("variable", "f/app/greeting", {"value": "hello"}, secret=True), namespace)
    kube.apply(labelled("resource", "f/app/db", {"value": json.dumps({"host": "db.local", "port": 5432})}), namespace)
    kube.apply(labelled("script", "f/app/shout", {"language": "python3",
                                                   "content": "def main(text: str):\n    return text.upper()\n"}), namespace)
    unlabelled = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "f-app-hidden"}, "stringData": {"value": "no"}}
    kube.apply(unlabelled, namespace)
    inner = flow_manifest("f-app-inner", [python_step("twice", "def main(n):\n    return n * 2\n", n="flow_input.n")])
    kube.apply(inner, namespace)
    uses = python_step(
        "use", "import wmill\n\ndef main(g, db):\n"
        "    try:\n        wmill.get_variable('f/app/hidden')\n        hidden = 'visible'\n"
        "    except Exception as error:\n        hidden = type(error).__name__\n"
        "    return {'g': g, 'api': wmill.get_variable('f/app/greeting'), 'port': db['port'], 'hidden': hidden}\n",
        db="resource('f/app/db')")
    uses["value"]["input_transforms"]["g"] = {"type": "static", "value": "$var:f/app/greeting"}
    shout = {"id": "shout", "value": {"type": "script", "path": "f/app/shout",
                                      "input_transforms": {"text": {"type": "javascript", "expr": "results.use.g"}}}}
    sub = {"id": "sub", "value": {"type": "flow", "path": "f/app/inner",
                                  "input_transforms": {"n": {"type": "javascript", "expr": "results.use.port"}}}}
    kube.apply(flow_manifest("data", [uses, shout, sub]), namespace)
    kube.apply(run_manifest("data-1", "data"), namespace)
    status = wait_phase(kube, namespace, "data-1")
    assert status["phase"] == "Succeeded", status
    # The secret variable's value is masked in the status; the next step still got it ("HELLO").
    assert status["steps"]["use"]["result"] == {"g": "********", "api": "********", "port": 5432, "hidden": "StepApiError"}
    assert status["steps"]["shout"]["result"] == "HELLO"
    assert status["result"] == 10864
    # The inner flow ran as a FlowRun of its own, owned by its parent.
    child = kube.get("flowrun", child_run_name("data-1", "sub", 1), namespace)
    assert child["metadata"]["ownerReferences"][0]["name"] == "data-1"
    assert child["status"]["phase"] == "Succeeded" and child["status"]["result"] == 10864
    assert child["status"]["steps"]["twice"]["result"] == 10864


def test_same_worker_steps_share_a_volume_that_ends_with_the_run(kube: Any, namespace: str, operator: Operator) -> None:
    write = python_step("write", "def main():\n    data = b'x' * (11 * 1024 * 1024)\n"
                                 "    open('shared/big.bin', 'wb').write(data)\n    return len(data)\n")
    read = python_step("read", "import os\n\ndef main():\n    return os.path.getsize('shared/big.bin')\n")
    kube.apply(flow_manifest("etl", [write, read], same_worker=True), namespace)
    kube.apply(run_manifest("etl-1", "etl"), namespace)
    status = wait_phase(kube, namespace, "etl-1")
    assert status["phase"] == "Succeeded", status
    assert status["result"] == 11 * 1024 * 1024
    # Deleted when the run ends; Kubernetes' claim protection frees it once the run's pods are gone.
    kube.wait_for(lambda: (kube.get("persistentvolumeclaim", shared_claim_name("etl-1"), namespace) or {})
                  .get("metadata", {}).get("deletionTimestamp"), what="the claim deleted")


def test_same_worker_steps_all_run_on_the_node_of_their_claim(kube: Any, namespace: str, operator: Operator) -> None:
    """The test cluster has two nodes and spreads free pods over them; the
    run's ReadWriteOnce claim is attached to one node at a time, so its pods,
    sequential and parallel, must all be placed on one node."""
    first = python_step("first", "def main():\n    open('shared/log', 'a').write('first\\n')\n    return 1\n")
    loop = {"id": "each", "value": {"type": "forloopflow", "parallel": True, "skip_failures": False,
                                    "iterator": {"type": "javascript", "expr": "[1, 2, 3]"},
                                    "modules": [python_step("add", "def main(v):\n    open('shared/log', 'a').write(f'{v}\\n')\n"
                                                                   "    return v\n", v="flow_input.iter.value")]}}
    middle = python_step("middle", "def main():\n    return 2\n")
    last = python_step("last", "def main():\n    return sorted(open('shared/log').read().split())\n")
    kube.apply(flow_manifest("placed", [first, loop, middle, last], same_worker=True), namespace)
    kube.apply(run_manifest("placed-1", "placed"), namespace)
    nodes: dict[str, str] = {}

    def finished() -> dict[str, Any] | None:
        for pod in kube.list("pods", namespace, "millrace.dev/run=placed-1"):
            if pod["spec"].get("nodeName"):
                nodes[pod["metadata"]["name"]] = pod["spec"]["nodeName"]
        status = (kube.get("flowrun", "placed-1", namespace) or {}).get("status") or {}
        return status if status.get("phase") in ("Succeeded", "Failed", "Cancelled") else None

    status = kube.wait_for(finished, timeout=180, what="FlowRun placed-1 to finish")
    assert status["phase"] == "Succeeded", status
    assert status["result"] == ["1", "2", "3", "first"]
    assert len(nodes) == 6, nodes
    assert len(set(nodes.values())) == 1, nodes


def test_a_large_result_is_kept_beside_the_status(kube: Any, namespace: str, operator: Operator) -> None:
    big = python_step("big", "def main():\n    return ['row %d' % i for i in range(2000)]\n")
    count = python_step("count", "def main(rows):\n    return len(rows)\n", rows="results.big")
    kube.apply(flow_manifest("large", [big, count]), namespace)
    kube.apply(run_manifest("large-1", "large"), namespace)
    status = wait_phase(kube, namespace, "large-1")
    assert status["phase"] == "Succeeded", status
    assert status["result"] == 2000
    step = status["steps"]["big"]
    assert "result" not in step and step["resultRef"] == report_name("large-1", "big", 1)
    assert len(json.dumps(status)) < 20_000


def test_a_shared_volume_that_cannot_be_bound_fails_the_run_clearly(kube: Any, namespace: str, operator: Operator) -> None:
    operator.stop()
    operator.start(MILLRACE_CLAIM_TIMEOUT_S="2", MILLRACE_RESYNC_S="1")
    flow = flow_manifest("nowhere", [python_step("a", "def main():\n    return 1\n")], same_worker=True)
    flow["spec"]["runtime"] = {"shared": {"storageClassName": "no-such-class"}}
    kube.apply(flow, namespace)
    kube.apply(run_manifest("nowhere-1", "nowhere"), namespace)
    status = wait_phase(kube, namespace, "nowhere-1")
    assert status["phase"] == "Failed"
    assert status["error"]["name"] == "VolumeNotBound"
    assert f"{shared_claim_name('nowhere-1')} (no-such-class) is not bound" in status["error"]["message"]


@pytest.mark.parametrize("example", ["hello-flow", "failure-handler-flow", "flow-user-state", "retry-flow", "shared-etl"])
def test_the_examples_run_in_the_cluster_as_they_run_locally(kube: Any, namespace: str, operator: Operator,
                                                            example: str, tmp_path: Path) -> None:
    manifest = REPO / "examples" / f"{example}.yaml"
    local = subprocess.run([sys.executable, "-m", "millrace.cli.main", "run", str(manifest), "--output", "json"],
                           capture_output=True, text=True, cwd=tmp_path, timeout=120,
                           env={**os.environ, "MILLRACE_HOME": str(tmp_path / "home")})
    expected = json.loads(local.stdout)
    kube.kubectl("apply", "-n", namespace, "-f", str(manifest))
    name = yaml.safe_load(manifest.read_text())["metadata"]["name"]
    kube.apply(run_manifest(f"{name}-1", name), namespace)
    status = wait_phase(kube, namespace, f"{name}-1", timeout=180)
    assert status["phase"] == expected["phase"], status
    # A failure handler reports when the failed step started: that differs between the two runs.
    assert without(status.get("result"), "started") == without(expected["result"], "started")


def without(value: Any, key: str) -> Any:
    return {k: v for k, v in value.items() if k != key} if isinstance(value, dict) else value


@pytest.mark.parametrize(("point", "moment"), [
    ("after-status:1", "after naming the first attempt, before its Job exists"),
    ("after-status:2", "between a step's end and the next step's start"),
    ("after-report:1", "while a result is being recorded"),
])
def test_a_crash_at_any_moment_loses_no_result_and_starts_no_step_twice(
        kube: Any, namespace: str, operator: Operator, point: str, moment: str) -> None:
    operator.stop()
    operator.start(MILLRACE_CRASH_AT=point)
    steps = [python_step("one", "def main():\n    return 1\n"),
             python_step("two", "def main(x):\n    return x + 1\n", x="results.one")]
    name = f"crash-{point.replace(':', '-')}"
    kube.apply(flow_manifest(name, steps), namespace)
    kube.apply(run_manifest(f"{name}-1", name), namespace)
    assert operator.process is not None
    operator.process.wait(60)  # it crashed at the point
    assert operator.process.returncode != 0, moment
    operator.start()
    status = wait_phase(kube, namespace, f"{name}-1")
    assert status["phase"] == "Succeeded", (moment, status)
    assert status["result"] == 2
    jobs = kube.list("jobs", namespace, f"millrace.dev/run={name}-1")
    assert sorted(j["metadata"]["name"] for j in jobs) == sorted([job_name(f"{name}-1", "one", 1), job_name(f"{name}-1", "two", 1)]), moment
    # Each step ran once: one pod per Job.
    assert [len(kube.list("pods", namespace, f"job-name={j['metadata']['name']}")) for j in jobs] == [1, 1], moment


def test_a_job_deleted_by_hand_fails_its_step_clearly(kube: Any, namespace: str, operator: Operator) -> None:
    kube.apply(flow_manifest("manual", [python_step("wait", "import time\n\ndef main():\n    time.sleep(30)\n")]), namespace)
    kube.apply(run_manifest("manual-1", "manual"), namespace)
    kube.wait_for(lambda: kube.list("jobs", namespace, "millrace.dev/run=manual-1"), what="the Job")
    kube.kubectl("delete", "job", job_name("manual-1", "wait", 1), "-n", namespace, "--wait=false")
    status = wait_phase(kube, namespace, "manual-1")
    assert status["phase"] == "Failed" and status["error"]["name"] == "JobDeleted", status
    assert len(kube.list("jobs", namespace, "millrace.dev/run=manual-1")) == 0


def test_args_that_do_not_match_the_schema_fail_the_run_before_any_step(kube: Any, namespace: str,
                                                                       operator: Operator) -> None:
    flow = flow_manifest("typed", [python_step("a", "def main():\n    return 1\n")])
    flow["spec"]["schema"] = {"type": "object", "properties": {"email": {"type": "string", "format": "email"}},
                              "required": ["email"]}
    kube.apply(flow, namespace)
    kube.apply(run_manifest("typed-1", "typed", {"email": "not-an-email"}), namespace)
    status = wait_phase(kube, namespace, "typed-1")
    assert status["phase"] == "Failed" and status["error"]["name"] == "InputError"
    assert "email" in status["error"]["message"]
    assert kube.list("jobs", namespace, "millrace.dev/run=typed-1") == []


def test_the_temperature_watcher_keeps_its_state_across_runs(kube: Any, namespace: str, operator: Operator) -> None:
    kube.kubectl("apply", "-n", namespace, "-f", str(REPO / "examples" / "temperature-watcher.yaml"))
    readings = {"readings": [{"at": "2024-06-01T10:00", "celsius": 21.5}, {"at": "2024-06-01T11:00", "celsius": 31}]}
    kube.apply(run_manifest("watch-1", "temperature-watcher", readings), namespace)
    first = wait_phase(kube, namespace, "watch-1")
    assert first["phase"] == "Succeeded" and first["result"] == {"new": 2, "hot": ["2024-06-01T11:00"], "hottest": 31}
    kube.apply(run_manifest("watch-2", "temperature-watcher", readings), namespace)
    second = wait_phase(kube, namespace, "watch-2")
    assert second["phase"] == "Succeeded" and second["stoppedEarly"] and second["result"] == []
    assert "alert" not in second["steps"]
    state = kube.list("configmaps", namespace, "millrace.dev/kind=state")
    assert len(state) == 1 and json.loads(state[0]["data"]["state"]) == "2024-06-01T11:00"
    assert state[0]["metadata"]["ownerReferences"][0]["kind"] == "Flow"


def test_a_signed_resume_link_continues_a_suspended_run(kube: Any, namespace: str, operator: Operator) -> None:
    ask = python_step("ask", "import wmill\n\ndef main():\n    return wmill.get_resume_urls(approver='carol')\n")
    ask["suspend"] = {"required_events": 1, "timeout": 600}
    after = python_step("after", "def main(r, who):\n    return {'r': r, 'who': who}\n", r="resume", who="approvers")
    kube.apply(flow_manifest("linked", [ask, after]), namespace)
    kube.apply(run_manifest("linked-1", "linked"), namespace)
    status = wait_phase(kube, namespace, "linked-1", phases=("Suspended",))
    links = status["steps"]["ask"]["result"]
    page = json.load(urllib.request.urlopen(links["approvalPage"]))
    assert page["run"] == f"{namespace}/linked-1"
    body = json.dumps({"payload": {"via": "link"}}).encode()
    urllib.request.urlopen(urllib.request.Request(links["resume"], data=body, method="POST")).read()
    status = wait_phase(kube, namespace, "linked-1")
    assert status["phase"] == "Succeeded", status
    assert status["result"] == {"r": {"via": "link"}, "who": ["carol"]}


def test_a_signed_cancel_link_disapproves_and_fails_the_run(kube: Any, namespace: str, operator: Operator) -> None:
    """Windmill (worker_flow.rs push_next_flow_job): a disapproval fails the flow, it does not cancel it."""
    ask = python_step("ask", "import wmill\n\ndef main():\n    return wmill.get_resume_urls(approver='dave')\n")
    ask["suspend"] = {"required_events": 1, "timeout": 600}
    kube.apply(flow_manifest("refused", [ask, python_step("after", "def main():\n    return 1\n")]), namespace)
    kube.apply(run_manifest("refused-1", "refused"), namespace)
    status = wait_phase(kube, namespace, "refused-1", phases=("Suspended",))
    links = status["steps"]["ask"]["result"]
    urllib.request.urlopen(urllib.request.Request(links["cancel"], data=b"{}", method="POST")).read()
    status = wait_phase(kube, namespace, "refused-1")
    assert status["phase"] == "Failed", status
    assert (status["error"]["name"], status["error"]["message"]) == ("SuspendedDisapproved", "Disapproved by dave")


def test_cancelling_a_parent_cancels_its_inner_flow_run(kube: Any, namespace: str, operator: Operator) -> None:
    kube.apply(flow_manifest("f-slow-inner", [python_step("nap", "import time\n\ndef main():\n    time.sleep(60)\n")]), namespace)
    kube.apply(flow_manifest("outer", [{"id": "sub", "value": {"type": "flow", "path": "f/slow-inner", "input_transforms": {}}}]),
               namespace)
    kube.apply(run_manifest("outer-1", "outer"), namespace)
    kube.wait_for(lambda: [p for p in kube.list("pods", namespace, f"millrace.dev/run={child_run_name('outer-1', 'sub', 1)}")
                           if p["status"].get("phase") == "Running"], what="the inner flow's step running")
    kube.kubectl("patch", "flowrun", "outer-1", "-n", namespace, "--type=merge", "-p", '{"spec": {"cancel": true}}')
    assert wait_phase(kube, namespace, "outer-1")["phase"] == "Cancelled"
    assert wait_phase(kube, namespace, child_run_name("outer-1", "sub", 1))["phase"] == "Cancelled"


def held_flow(name: str) -> dict[str, Any]:
    """A flow that suspends at once, with no pod (a step follows: Windmill waits as it starts the next one)."""
    return flow_manifest(name, [{"id": "wait", "value": {"type": "identity"},
                                 "suspend": {"required_events": 1, "timeout": 3600}},
                                {"id": "then", "value": {"type": "identity"}}])


def test_a_job_refused_by_a_quota_fails_its_step_clearly_and_nothing_loops(kube: Any, namespace: str,
                                                                          operator: Operator) -> None:
    kube.apply({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "no-jobs"},
                "spec": {"hard": {"count/jobs.batch": "0"}}}, namespace)
    kube.wait_for(lambda: ((kube.get("resourcequota", "no-jobs", namespace) or {}).get("status") or {}).get("hard"),
                  what="the quota observed")
    kube.apply(flow_manifest("quota", [python_step("a", "def main():\n    return 1\n")]), namespace)
    kube.apply(run_manifest("quota-1", "quota"), namespace)
    status = wait_phase(kube, namespace, "quota-1")
    assert status["phase"] == "Failed" and status["error"]["name"] == "QuotaExceeded", status
    assert "exceeded quota: no-jobs" in status["error"]["message"]
    finished = next(c for c in status["conditions"] if c["type"] == "Succeeded")
    assert finished["reason"] == "Failed" and "QuotaExceeded" in finished["message"]
    assert operator.process is not None and operator.process.poll() is None


def test_an_unreadable_resume_record_fails_the_run_clearly(kube: Any, namespace: str, operator: Operator) -> None:
    kube.apply(held_flow("held"), namespace)
    kube.apply(run_manifest("held-1", "held"), namespace)
    wait_phase(kube, namespace, "held-1", phases=("Suspended",))
    run = kube.get("flowrun", "held-1", namespace)
    kube.apply({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "held-1-resume-by-hand",
                             "labels": {"millrace.dev/run": "held-1", "millrace.dev/kind": "resume"},
                             "ownerReferences": [{"apiVersion": "millrace.dev/v1alpha1", "kind": "FlowRun",
                                                  "name": "held-1", "uid": run["metadata"]["uid"],
                                                  "controller": True}]},
                "data": {"request": "{not json"}}, namespace)
    status = wait_phase(kube, namespace, "held-1")
    assert status["phase"] == "Failed" and status["error"]["name"] == "InvalidResume", status
    assert "resume record held-1-resume-by-hand is unreadable" in status["error"]["message"]


def test_a_binary_labelled_secret_fails_the_run_naming_it(kube: Any, namespace: str, operator: Operator) -> None:
    import base64

    kube.apply({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "f-app-blob", "labels": {"millrace.dev/kind": "variable"},
                             "annotations": {"millrace.dev/path": "f/app/blob"}},
                "data": {"value": base64.b64encode(b"\xff\xfe\x00binary").decode()}}, namespace)
    step = python_step("use", "def main(v):\n    return v\n")
    step["value"]["input_transforms"]["v"] = {"type": "static", "value": "$var:f/app/blob"}
    kube.apply(flow_manifest("blob", [step]), namespace)
    kube.apply(run_manifest("blob-1", "blob"), namespace)
    status = wait_phase(kube, namespace, "blob-1")
    assert status["phase"] == "Failed" and status["error"]["name"] == "UnreadableData", status
    assert "Secret f-app-blob" in status["error"]["message"] and "'value' is binary" in status["error"]["message"]


def test_without_the_webhook_a_flow_validate_refuses_does_not_run(kube: Any, namespace: str, operator: Operator) -> None:
    twice = python_step("a", "def main():\n    return 1\n")
    bad = flow_manifest("unchecked", [twice, twice])
    run = {"apiVersion": "millrace.dev/v1alpha1", "kind": "FlowRun", "metadata": {"name": "unchecked-1"},
           "spec": {"flow": bad["spec"], "args": {}}}
    kube.apply(run, namespace)  # the operator fixture runs without the webhook
    status = wait_phase(kube, namespace, "unchecked-1")
    assert status["phase"] == "Failed" and status["error"]["name"] == "InvalidFlow", status
    assert "duplicate step id 'a'" in status["error"]["message"]
    assert kube.list("jobs", namespace, "millrace.dev/run=unchecked-1") == []


def test_a_resume_payload_is_checked_against_the_resume_form(kube: Any, namespace: str, operator: Operator) -> None:
    form = {"schema": {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}}
    flow = flow_manifest("formed", [{"id": "wait", "value": {"type": "identity"},
                                     "suspend": {"required_events": 1, "timeout": 3600, "resume_form": form}},
                                    {"id": "then", "value": {"type": "identity"}}])
    kube.apply(flow, namespace)
    kube.apply(run_manifest("formed-1", "formed"), namespace)
    wait_phase(kube, namespace, "formed-1", phases=("Suspended",))
    bad = millrace_cli(kube, "resume", "formed-1", "-n", namespace, "--payload", '{"ok": "yes"}')
    assert bad.returncode == 0, bad.stderr  # recorded; the operator judges it

    def refused() -> str | None:
        events = kube.list("events", namespace)
        return next((e["message"] for e in events if e["reason"] == "ResumeRefused"), None)

    message = kube.wait_for(refused, what="the ResumeRefused event")
    assert "resume payload: input 'ok': 'yes' is not of type 'boolean'" in message
    assert kube.get("flowrun", "formed-1", namespace)["status"]["phase"] == "Suspended"
    good = millrace_cli(kube, "resume", "formed-1", "-n", namespace, "--payload", '{"ok": true}')
    assert good.returncode == 0, good.stderr
    assert wait_phase(kube, namespace, "formed-1")["phase"] == "Succeeded"


def test_an_inner_flows_large_result_reaches_the_parent_whole(kube: Any, namespace: str, operator: Operator) -> None:
    rows = python_step("rows", "def main():\n    return ['row %d' % i for i in range(2000)]\n")
    kube.apply(flow_manifest("f-big-inner", [rows]), namespace)
    sub = {"id": "sub", "value": {"type": "flow", "path": "f/big-inner", "input_transforms": {}}}
    count = python_step("count", "def main(rows):\n    return [len(rows), rows[-1]]\n", rows="results.sub")
    kube.apply(flow_manifest("bigouter", [sub, count]), namespace)
    kube.apply(run_manifest("bigouter-1", "bigouter"), namespace)
    status = wait_phase(kube, namespace, "bigouter-1", timeout=180)
    assert status["phase"] == "Succeeded", status
    assert status["result"] == [2000, "row 1999"]
    child = kube.get("flowrun", child_run_name("bigouter-1", "sub", 1), namespace)["status"]
    assert "result" not in child and child["resultRef"]
    kept = kube.get("configmap", child["resultRef"], namespace)
    assert json.loads(kept["data"]["report"])["result"][-1] == "row 1999"
    assert status["steps"]["sub"]["resultRef"] == child["resultRef"] and "result" not in status["steps"]["sub"]


def test_a_finished_run_is_deleted_after_its_retention(kube: Any, namespace: str, operator: Operator) -> None:
    operator.stop()
    operator.start(MILLRACE_RETENTION_S="3")
    kube.apply(flow_manifest("brief", [python_step("a", "def main():\n    return 1\n")]), namespace)
    kube.apply(run_manifest("brief-1", "brief"), namespace)
    kube.wait_for(lambda: ((kube.get("flowrun", "brief-1", namespace) or {}).get("status") or {}).get("phase")
                  == "Succeeded", what="the run to succeed")
    kube.wait_for(lambda: kube.get("flowrun", "brief-1", namespace) is None, timeout=60, what="the run deleted")
    kube.wait_for(lambda: not kube.list("jobs", namespace, "millrace.dev/run=brief-1")
                  and not kube.list("configmaps", namespace, "millrace.dev/run=brief-1"), what="its objects collected")


def test_uninstalling_leaves_no_run_that_cannot_be_deleted(kube: Any, helm: Any, namespace: str,
                                                           operator: Operator) -> None:
    kube.apply(held_flow("left"), namespace)
    kube.apply(run_manifest("left-1", "left"), namespace)
    wait_phase(kube, namespace, "left-1", phases=("Suspended",))
    assert not kube.get("flowrun", "left-1", namespace)["metadata"].get("finalizers")
    operator.stop()
    helm("uninstall", "millrace", "--namespace", namespace)
    # Nobody runs the operator any more: deleting the run must not wait for it.
    kube.kubectl("delete", "flowrun", "left-1", "-n", namespace, "--timeout=30s")
    kube.kubectl("delete", "flow", "left", "-n", namespace, "--timeout=30s")


def test_a_reinstall_keeps_the_signing_key_so_running_steps_and_sent_links_still_work(
        kube: Any, helm: Any, namespace: str, operator: Operator, tmp_path: Path) -> None:
    def key() -> str:
        return kube.get("secret", "millrace-signing-key", namespace)["data"]["key"]

    before = key()
    operator.stop()
    operator.start(MILLRACE_SIGNING_KEY=before)  # the key the chart's Deployment would pass
    ask = python_step("ask", "import wmill\n\ndef main():\n    return wmill.get_resume_urls(approver='dee')\n")
    ask["suspend"] = {"required_events": 1, "timeout": 600}
    after = python_step("after", "def main(r):\n    return r\n", r="resume")
    kube.apply(flow_manifest("kept", [ask, after]), namespace)
    kube.apply(run_manifest("kept-1", "kept"), namespace)
    links = wait_phase(kube, namespace, "kept-1", phases=("Suspended",))["steps"]["ask"]["result"]
    kube.apply(flow_manifest("slow", [python_step("s", "import time\n\ndef main():\n    time.sleep(4)\n    return 5\n")]), namespace)
    kube.apply(run_manifest("slow-1", "slow"), namespace)
    kube.wait_for(lambda: any(p["status"].get("phase") == "Running"
                              for p in kube.list("pods", namespace, "millrace.dev/run=slow-1")), what="the slow step's pod")
    operator.stop()
    helm("uninstall", "millrace", "--namespace", namespace, "--wait")
    values = tmp_path / "values.json"  # as installed_operator installed it
    helm("install", "millrace", str(REPO / "charts" / "millrace"), "--namespace", namespace, "--values", str(values))
    assert key() == before
    # A new ServiceAccount: the new operator pod would get a new token.
    operator.kubeconfig = service_account_kubeconfig(kube, namespace, "millrace", operator.kubeconfig)
    operator.start(MILLRACE_SIGNING_KEY=key())
    body = json.dumps({"payload": {"after": "reinstall"}}).encode()

    def resumed() -> bool:
        try:
            urllib.request.urlopen(urllib.request.Request(links["resume"], data=body, method="POST")).read()
        except urllib.error.URLError as exc:
            if isinstance(exc, urllib.error.HTTPError):
                raise  # refused: the link no longer verifies
            return False  # the operator is still starting
        return True

    kube.wait_for(resumed, what="the step API to take the link")
    assert wait_phase(kube, namespace, "kept-1")["result"] == {"after": "reinstall"}
    slow = wait_phase(kube, namespace, "slow-1")
    assert (slow["phase"], slow["result"]) == ("Succeeded", 5), slow
