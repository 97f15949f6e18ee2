"""The two workloads the cluster benchmarks time, driven the same way.

millrace: N FlowRuns of a flow of M python3 steps, created at once; done when
every run is Succeeded. Baseline: N chains of M bare Jobs (`python3 -c`),
each Job created as soon as the previous one of its chain is Complete. Both
are created with the same API client and followed with the same watch (list,
then watch from that resourceVersion, list again if the watch ends), so
neither side pays for polling the other does not.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cluster_env import Cluster
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

GROUP, VERSION = "millrace.dev", "v1alpha1"
STEP_CODE = "def main():\n    return 1\n"
BARE_COMMAND = ["python3", "-c", STEP_CODE + "print(main())\n"]
LABEL = "millrace.dev/bench"


@dataclass
class Outcome:
    seconds: float
    steps: int
    requests: Counter[tuple[str, str]]  # apiserver_request_total delta over the workload
    failures: dict[str, str] = field(default_factory=dict)  # FlowRun -> its error, for runs that did not succeed

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())


def follow(list_fn: Callable[..., Any], api: client.ApiClient, seen: Callable[[dict[str, Any]], bool],
           deadline: float, what: str, **kwargs: Any) -> None:
    """Feed every state of the listed objects to `seen` until it returns True."""
    while True:
        listed = api.sanitize_for_serialization(list_fn(**kwargs))
        if any(seen(item) for item in listed["items"]):
            return
        version = listed["metadata"]["resourceVersion"]
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"timed out waiting for {what}")
        try:
            for event in watch.Watch().stream(list_fn, resource_version=version,
                                              timeout_seconds=max(1, int(min(remaining, 60))), **kwargs):
                if event["type"] in ("ADDED", "MODIFIED") and seen(api.sanitize_for_serialization(event["object"])):
                    return
        except ApiException as exc:
            if exc.status != 410:  # a stale resourceVersion: list again
                raise


def measured(kube: Cluster, steps: int, work: Callable[[], None], failures: dict[str, str] | None = None) -> Outcome:
    before = kube.request_counts()
    started = time.perf_counter()
    work()
    seconds = time.perf_counter() - started
    return Outcome(seconds, steps, kube.request_counts() - before, failures or {})


# --- baseline: bare Jobs ---------------------------------------------------------------------------

def bare_job(name: str, tag: str) -> dict[str, Any]:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "labels": {LABEL: tag}},
            "spec": {"backoffLimit": 0, "template": {"metadata": {"labels": {LABEL: tag}}, "spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "main", "image": "python:3.12-slim", "command": BARE_COMMAND}]}}}}


def _job_state(job: dict[str, Any]) -> tuple[str, str | None]:
    conditions = {c["type"]: c["status"] for c in (job.get("status") or {}).get("conditions") or []}
    state = "failed" if conditions.get("Failed") == "True" else "done" if conditions.get("Complete") == "True" else None
    return job["metadata"]["name"], state


def _pod_state(pod: dict[str, Any]) -> tuple[str, str | None]:
    phase = (pod.get("status") or {}).get("phase")
    state = "failed" if phase == "Failed" else "done" if phase == "Succeeded" else None
    return pod["metadata"]["labels"]["batch.kubernetes.io/job-name"], state


def bare_chains(kube: Cluster, ns: str, tag: str, chains: int, steps: int, timeout: float,
                until: str = "job") -> Outcome:
    """`chains` chains of `steps` Jobs, each created when the previous one of its
    chain is Complete (until="job"), or as soon as its pod Succeeded (until="pod",
    not waiting for the Job controller to mark the Job)."""
    batch, core = client.BatchV1Api(kube.api), client.CoreV1Api(kube.api)
    position = dict.fromkeys(range(chains), 0)  # chain -> index of its running Job
    state_of, list_fn = (_job_state, batch.list_namespaced_job) if until == "job" else (_pod_state, core.list_namespaced_pod)

    def create(chain: int) -> None:
        batch.create_namespaced_job(ns, bare_job(f"{tag}-c{chain}-s{position[chain]}", tag))

    def seen(obj: dict[str, Any]) -> bool:
        name, state = state_of(obj)
        chain, step = (int(part[1:]) for part in name.removeprefix(f"{tag}-").split("-"))
        if state == "failed":
            raise RuntimeError(f"baseline Job {name} failed: {obj['status']}")
        if state == "done" and position.get(chain) == step:
            position[chain] += 1
            if position[chain] == steps:
                del position[chain]
            else:
                create(chain)
        return not position

    def work() -> None:
        for chain in range(chains):
            create(chain)
        follow(list_fn, kube.api, seen, time.monotonic() + timeout,
               f"{chains} chains of {steps} Jobs", namespace=ns, label_selector=f"{LABEL}={tag}")

    return measured(kube, chains * steps, work)


# --- millrace: FlowRuns --------------------------------------------------------------------------------

def apply_flow(kube: Cluster, ns: str, name: str, summary: str, modules: list[dict[str, Any]]) -> None:
    flow = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Flow", "metadata": {"name": name},
            "spec": {"summary": summary, "value": {"modules": modules}}}
    client.CustomObjectsApi(kube.api).create_namespaced_custom_object(GROUP, VERSION, ns, "flows", flow)


def python_step(step_id: str, code: str = STEP_CODE, **transforms: str) -> dict[str, Any]:
    return {"id": step_id, "value": {"type": "rawscript", "language": "python3", "content": code,
                                     "input_transforms": {k: {"type": "javascript", "expr": v}
                                                          for k, v in transforms.items()}}}


def create_flow(kube: Cluster, ns: str, name: str, steps: int) -> None:
    apply_flow(kube, ns, name, f"{steps} sequential python3 steps", [python_step(f"s{i}") for i in range(steps)])


def run_body(name: str, flow: str, tag: str) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "FlowRun",
            "metadata": {"name": name, "labels": {LABEL: tag}}, "spec": {"flowRef": {"name": flow}, "args": {}}}


def flow_runs(kube: Cluster, ns: str, flow: str, tag: str, runs: int, steps: int, timeout: float,
              observe: Callable[[dict[str, Any]], None] | None = None) -> Outcome:
    """`runs` FlowRuns of `flow` created at once; done when all have finished.
    A run that fails is kept in Outcome.failures: the report says so rather than losing the measurement.
    `observe` is given every state of a run the watch shows."""
    custom = client.CustomObjectsApi(kube.api)
    pending = {f"{tag}-{index}" for index in range(runs)}
    failures: dict[str, str] = {}

    def seen(run: dict[str, Any]) -> bool:
        if observe:
            observe(run)
        status, name = run.get("status") or {}, run["metadata"]["name"]
        if status.get("phase") in ("Failed", "Cancelled") and name in pending:
            error = status.get("error") or {}
            failures[name] = f"{status['phase']} at step {error.get('step')}: {error.get('name')}: {error.get('message')}"
        if status.get("phase") in ("Succeeded", "Failed", "Cancelled"):
            pending.discard(name)
        return not pending

    def work() -> None:
        for name in sorted(pending):
            custom.create_namespaced_custom_object(GROUP, VERSION, ns, "flowruns", run_body(name, flow, tag))
        follow(custom.list_namespaced_custom_object, kube.api, seen, time.monotonic() + timeout,
               f"{runs} FlowRuns of {steps} steps", group=GROUP, version=VERSION, namespace=ns, plural="flowruns",
               label_selector=f"{LABEL}={tag}")

    return measured(kube, runs * steps, work, failures)


def idle_requests(kube: Cluster, seconds: float) -> float:
    """Requests per second the control plane makes with nothing to do (leases,
    node heartbeats, controllers' resyncs, the operator's idle watches)."""
    before = kube.request_counts()
    time.sleep(seconds)
    return sum((kube.request_counts() - before).values()) / seconds
