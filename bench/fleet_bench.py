"""Cluster benchmarks at scale (issues 9 and 10), on the same control plane as cluster_bench.

    python bench/fleet_bench.py [--only live|loop] [--runs 1000] [--items 2000] [--baseline-items 200]

live: 1,000 FlowRuns alive at once (most suspended at an approval step, with
no pod), while new Flows are applied through the operator's validating
webhook and a new FlowRun of one step runs to the end; against the same
measurements on the fresh operator with no live run.

loop: one FlowRun of a parallel for loop over 2,000 items, against a loop of
200 items on the same operator: wall and CPU per iteration, the largest
FlowRun.status the watch showed, the operator's peak memory.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml
from cluster_env import Cluster, Operator, cluster, namespace, operator, progress, webhook_operator
from cluster_workloads import (GROUP, LABEL, VERSION, apply_flow, create_flow, flow_runs, follow, python_step,
                               run_body)
from common import REPO, Section, ratio
from kubernetes import client
from kubernetes.client.exceptions import ApiException

LIVE_RUNS = 1000
STEPPED_EVERY = 20  # one live run in 20 runs a bash step (a pod) before it suspends; the others suspend at once
CREATORS = 8  # threads creating the live runs
APPLIES = 50  # Flow creates timed through the webhook, idle and loaded
NEW_RUNS = 3  # one-step FlowRuns timed to Succeeded, idle and loaded
LOOP_ITEMS, LOOP_BASELINE, LOOP_PARALLELISM = 2000, 200, 20
STATUS_TARGET = 256 * 1024
SUSPEND = {"required_events": 1, "timeout": 3600}


def chart_memory_limit_mib() -> float:
    """The operator's memory limit in the chart's default values, in MiB."""
    values = yaml.safe_load((REPO / "charts" / "millrace" / "values.yaml").read_text())
    limit = str(values["operator"]["resources"]["limits"]["memory"])
    units = {"Mi": 1, "Gi": 1024, "M": 1e6 / 2**20, "G": 1e9 / 2**20}
    unit = next(u for u in units if limit.endswith(u))
    return float(limit.removesuffix(unit)) * units[unit]


def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def mib(kb: int) -> str:
    return f"{kb / 1024:.0f}"


# --- live: 1,000 runs alive at once ------------------------------------------------------------------

class Probe:
    """What the live benchmark measures twice: with no live run, then with all of them alive."""

    def __init__(self, kube: Cluster, ns: str, op: Operator) -> None:
        self.kube, self.ns, self.op = kube, ns, op

    def measure(self, tag: str) -> dict[str, Any]:
        applies, refused = [], []
        webhook_before = self.kube.webhook_seconds()
        for index in range(APPLIES):
            started = time.perf_counter()
            try:
                create_flow(self.kube, self.ns, f"{tag}-flow-{index}", 1)
            except ApiException as exc:
                refused.append(f"{tag}-flow-{index}: {exc.status} {exc.reason}")
            applies.append(time.perf_counter() - started)
        seconds, calls = (after - before for after, before in zip(self.kube.webhook_seconds(), webhook_before))
        runs = [flow_runs(self.kube, self.ns, "quick", f"{tag}-run{index}", 1, 1, timeout=300) for index in range(NEW_RUNS)]
        self.op.check_alive()
        return {"p50": percentile(applies, 50), "p99": percentile(applies, 99), "refused": refused,
                "webhook": seconds / calls if calls else float("nan"), "calls": calls,
                "run_best": min(r.seconds for r in runs), "run_median": statistics.median(r.seconds for r in runs),
                "run_failures": [f for r in runs for f in r.failures.values()], "rss": self.op.memory_kb("VmRSS")}


def start_live_runs(kube: Cluster, ns: str, runs: int) -> float:
    """Create `runs` FlowRuns from a few threads; the seconds it took."""
    custom = client.CustomObjectsApi(kube.api)

    def create(index: int) -> None:
        flow = "hold-step" if index % STEPPED_EVERY == 0 else "hold"
        custom.create_namespaced_custom_object(GROUP, VERSION, ns, "flowruns", run_body(f"live-{index}", flow, "live"))

    started = time.perf_counter()
    with ThreadPoolExecutor(CREATORS) as pool:
        list(pool.map(create, range(runs)))
    return time.perf_counter() - started


def wait_suspended(kube: Cluster, ns: str, runs: int, timeout: float) -> dict[str, str]:
    """Wait until every live run is Suspended or has ended; the phase of those not Suspended."""
    phases: dict[str, str] = {}

    def seen(run: dict[str, Any]) -> bool:
        phase = (run.get("status") or {}).get("phase")
        if phase in ("Suspended", "Succeeded", "Failed", "Cancelled"):
            phases[run["metadata"]["name"]] = phase
        return len(phases) == runs

    custom = client.CustomObjectsApi(kube.api)
    follow(custom.list_namespaced_custom_object, kube.api, seen, time.monotonic() + timeout,
           f"{runs} FlowRuns suspended", group=GROUP, version=VERSION, namespace=ns, plural="flowruns",
           label_selector=f"{LABEL}=live")
    return {name: phase for name, phase in phases.items() if phase != "Suspended"}


def live_section(kube: Cluster, runs: int) -> Section:
    limit = chart_memory_limit_mib()
    out = Section(
        key="fleet-live", title=f"Cluster: {runs:,} FlowRuns alive at once",
        how=(f"Same control plane as above, a fresh namespace; `millrace operator` (default settings: 4 reconcile "
             f"workers) serves its validating webhook with TLS on 127.0.0.1, and a ValidatingWebhookConfiguration "
             f"for the namespace points the apiserver at it by URL, so every Flow and FlowRun create below goes "
             f"through it. Baseline first, on the fresh operator with no live run (after a one-step warm-up run): "
             f"{APPLIES} Flow creates one after another, each timed from the create request to its answer (the "
             f"webhook call and the write); the mean webhook call as the apiserver times it "
             f"(`apiserver_admission_webhook_admission_duration_seconds`, every millrace webhook call in that "
             f"window); then {NEW_RUNS} FlowRuns of a one-step python3 flow, each timed from its create to the "
             f"watch event that shows it Succeeded. Then {runs:,} FlowRuns are created from {CREATORS} threads: "
             f"a flow whose first step is an approval (an `identity` step with `suspend`, no pod, then an `identity` "
             f"step), and one run in {STEPPED_EVERY} a bash `echo` step with `suspend` (a pod, then the approval). "
             f"Once the watch shows "
             f"every one Suspended, the same measurements again, all of them alive. Memory: VmRSS and VmHWM (peak "
             f"resident set) of the operator process (/proc/<pid>/status) against the chart's limit "
             f"({limit:.0f} MiB); CPU: the operator's user + system time from the first create to the last "
             f"Suspended, per live run (one step each)."),
        header=["what", "0 live runs (baseline)", f"{runs:,} live runs", "loaded vs idle"],
    )
    with tempfile.TemporaryDirectory() as folder, namespace(kube, "bench-fleet", cleanup_timeout=600) as ns, \
            webhook_operator(kube, ns, Path(folder)) as op:
        create_flow(kube, ns, "quick", 1)
        flow_runs(kube, ns, "quick", "warmup", 1, 1, timeout=120)
        probe = Probe(kube, ns, op)
        idle = probe.measure("idle")
        progress(f"live: idle p50 {idle['p50'] * 1000:.0f} ms, new run {idle['run_best']:.1f} s")
        # A step follows each approval: Windmill waits for it as it starts the next step.
        then = {"id": "then", "value": {"type": "identity"}}
        apply_flow(kube, ns, "hold", "an approval at once", [{"id": "wait", "value": {"type": "identity"},
                                                              "suspend": SUSPEND}, then])
        echo = {"id": "echo", "value": {"type": "rawscript", "language": "bash", "content": "echo ready\n",
                                        "input_transforms": {}}, "suspend": SUSPEND}
        apply_flow(kube, ns, "hold-step", "a bash step, then an approval", [echo, then])
        cpu = op.cpu_seconds()
        started = time.perf_counter()
        created = start_live_runs(kube, ns, runs)
        progress(f"live: {runs} FlowRuns created in {created:.0f} s")
        not_suspended = wait_suspended(kube, ns, runs, timeout=300 + runs * 2.0)
        alive = time.perf_counter() - started
        cpu = op.cpu_seconds() - cpu
        progress(f"live: all {runs} live after {alive:.0f} s; measuring under load")
        loaded = probe.measure("loaded")
        peak = op.memory_kb("VmHWM")
    for name, key, scale, unit in [("Flow create through the webhook, p50", "p50", 1000, "ms"),
                                   ("Flow create through the webhook, p99", "p99", 1000, "ms"),
                                   ("webhook call as the apiserver times it, mean", "webhook", 1000, "ms"),
                                   (f"new one-step FlowRun to Succeeded, best of {NEW_RUNS}", "run_best", 1, "s"),
                                   (f"same, median of {NEW_RUNS}", "run_median", 1, "s")]:
        digits = 0 if unit == "ms" else 2
        out.rows.append([f"{name} ({unit})", f"{idle[key] * scale:.{digits}f}", f"{loaded[key] * scale:.{digits}f}",
                         ratio(loaded[key], idle[key])])
    out.rows.append(["operator VmRSS (MiB)", mib(idle["rss"]), mib(loaded["rss"]), ratio(loaded["rss"], idle["rss"])])
    refused = idle["refused"] + loaded["refused"]
    out.target(not refused, f"every Flow create answered by the webhook: {2 * APPLIES - len(refused)} of {2 * APPLIES}")
    out.target(not not_suspended, f"{runs - len(not_suspended):,} of {runs:,} runs alive (Suspended) at once")
    failed = idle["run_failures"] + loaded["run_failures"]
    out.target(not failed, f"new runs complete while all are alive: {2 * NEW_RUNS - len(failed)} of {2 * NEW_RUNS} Succeeded")
    out.target(peak / 1024 <= limit, f"operator peak memory {peak / 1024:.0f} MiB (VmHWM), chart limit {limit:.0f} MiB")
    out.notes += ["", f"Creating the {runs:,} FlowRuns ({CREATORS} threads, each create through the webhook) took "
                  f"{created:.0f} s ({runs / created:.1f} runs/s); every one was Suspended {alive:.0f} s after the "
                  f"first create. Operator CPU over that time: {cpu:.1f} s, {cpu / runs * 1000:.0f} ms per live run "
                  f"(one step each); {loaded['calls']} webhook calls in the loaded window."]
    out.notes += [f"- not alive: {name}: {phase}" for name, phase in sorted(not_suspended.items())]
    out.notes += [f"- refused: {line}" for line in refused] + [f"- new run: {line}" for line in failed]
    return out


# --- loop: a large for loop -----------------------------------------------------------------------

def loop_flow(kube: Cluster, ns: str, items: int) -> str:
    name = f"loop-{items}"
    body = python_step("x", "def main(i):\n    return i\n", i="flow_input.iter.value")
    apply_flow(kube, ns, name, f"a parallel for loop over {items} items", [{"id": "l", "value": {
        "type": "forloopflow", "parallel": True, "skip_failures": False,
        "parallelism": {"type": "static", "value": LOOP_PARALLELISM},
        "iterator": {"type": "javascript", "expr": f"Array.from({{length: {items}}}, (_, i) => i)"},
        "modules": [body]}}])
    return name


def one_loop(kube: Cluster, ns: str, op: Operator, items: int) -> dict[str, Any]:
    largest, last = 0, {}

    def observe(run: dict[str, Any]) -> None:
        nonlocal largest, last
        last = run.get("status") or {}
        largest = max(largest, len(json.dumps(last, separators=(",", ":"))))

    flow = loop_flow(kube, ns, items)
    cpu = op.cpu_seconds()
    outcome = flow_runs(kube, ns, flow, flow, 1, items, timeout=600 + items * 2.0, observe=observe)
    cpu = op.cpu_seconds() - cpu
    op.check_alive()
    return {"items": items, "seconds": outcome.seconds, "cpu": cpu, "largest": largest, "peak": op.memory_kb("VmHWM"),
            "complete": run_result(kube, ns, last) == list(range(items)), "failures": list(outcome.failures.values())}


def run_result(kube: Cluster, ns: str, status: dict[str, Any]) -> Any:
    """A finished run's result: inline, or, past the inline limit, in the ConfigMap `resultRef` names."""
    if not status.get("resultRef"):
        return status.get("result")
    kept = client.CoreV1Api(kube.api).read_namespaced_config_map(status["resultRef"], ns)
    return json.loads(kept.data["report"]).get("result")


def loop_section(kube: Cluster, items: int, baseline_items: int) -> Section:
    limit = chart_memory_limit_mib()
    out = Section(
        key="fleet-loop", title=f"Cluster: a for loop of {items:,} items",
        how=(f"Same control plane, a fresh namespace and operator (warmed up with a one-step run). One FlowRun of a "
             f"flow whose only step is a parallel for loop (parallelism {LOOP_PARALLELISM}) over "
             f"`Array.from({{length: N}}, (_, i) => i)`, each iteration a python3 step returning its item (a Job "
             f"and a pod each), timed from the create to the watch event that shows it Succeeded. Baseline in the "
             f"same run, first, on the same operator: the same loop over {baseline_items:,} items. Status: the "
             f"largest `FlowRun.status` (compact JSON) among every state the watch showed. CPU: the operator's "
             f"user + system time over the run; memory: its VmHWM after the run (the peak so far, the baseline "
             f"included), against the chart's limit ({limit:.0f} MiB)."),
        header=["items", "wall (s)", "per iteration (ms)", f"vs {baseline_items:,} items", "largest status (KiB)",
                "operator CPU per iteration (ms)", f"CPU vs {baseline_items:,} items", "operator peak memory (MiB)"],
    )
    with tempfile.TemporaryDirectory() as folder, namespace(kube, "bench-loop", cleanup_timeout=600) as ns, \
            operator(kube, ns, Path(folder) / "operator.log") as op:
        create_flow(kube, ns, "warmup", 1)
        flow_runs(kube, ns, "warmup", "warmup", 1, 1, timeout=120)
        results = []
        for size in (baseline_items, items):
            results.append(one_loop(kube, ns, op, size))
            progress(f"loop: {size} items in {results[-1]['seconds']:.0f} s")
    base = results[0]
    for found in results:
        wall, cpu = found["seconds"] / found["items"], found["cpu"] / found["items"]
        out.rows.append([f"{found['items']:,}", f"{found['seconds']:.0f}", f"{wall * 1000:.0f}",
                         ratio(wall, base["seconds"] / base["items"]), f"{found['largest'] / 1024:.1f}",
                         f"{cpu * 1000:.0f}", ratio(cpu, base["cpu"] / base["items"]), mib(found["peak"])])
    big = results[-1]
    out.target(big["complete"] and not big["failures"],
               f"the {items:,}-item loop Succeeded with all its results" + "".join(f"; {f}" for f in big["failures"]))
    out.target(big["largest"] < STATUS_TARGET, f"largest status {big['largest'] / 1024:.1f} KiB, target under 256 KiB")
    cpu_ratio = (big["cpu"] / big["items"]) / (base["cpu"] / base["items"])
    out.target(cpu_ratio <= 2, f"operator CPU per iteration at {items:,} items {cpu_ratio:.2f}x the cost at "
               f"{baseline_items:,}, target within 2x")
    out.target(big["peak"] / 1024 <= limit, f"operator peak memory {big['peak'] / 1024:.0f} MiB, chart limit {limit:.0f} MiB")
    return out


def sections(only: set[str], runs: int = LIVE_RUNS, items: int = LOOP_ITEMS,
             baseline_items: int = LOOP_BASELINE) -> list[Section]:
    with cluster() as kube:
        out = []
        if "live" in only:
            out.append(live_section(kube, runs))
        if "loop" in only:
            out.append(loop_section(kube, items, baseline_items))
        return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["live", "loop"], action="append")
    parser.add_argument("--runs", type=int, default=LIVE_RUNS)
    parser.add_argument("--items", type=int, default=LOOP_ITEMS)
    parser.add_argument("--baseline-items", type=int, default=LOOP_BASELINE)
    args = parser.parse_args()
    for found in sections(set(args.only or ["live", "loop"]), args.runs, args.items, args.baseline_items):
        print(found.markdown(), "\n")
