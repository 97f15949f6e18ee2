"""Flow schedules in the cluster: the operator starts runs by itself, as CronJob would."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from .test_operator import Operator, flow_manifest, operator, python_step, run_manifest, wait_phase  # noqa: F401  (fixture)

pytestmark = pytest.mark.cluster


def scheduled_runs(kube: Any, namespace: str) -> list[dict[str, Any]]:
    return kube.list("flowruns", namespace, selector="millrace.dev/scheduled=true")


def test_a_schedule_starts_runs_named_by_fire_time_and_keeps_its_history(kube: Any, namespace: str,
                                                                            operator: Operator) -> None:
    flow = flow_manifest("tick", [python_step("a", "def main(n):\n    return n * 2\n", n="flow_input.n")])
    flow["spec"]["schedule"] = {"cron": "*/2 * * * * *", "args": {"n": 21}, "successfulRunsHistoryLimit": 1}
    kube.apply(flow, namespace)
    seen: set[str] = set()

    def three_runs() -> bool | None:
        seen.update(r["metadata"]["name"] for r in scheduled_runs(kube, namespace))
        return len(seen) >= 3 or None

    kube.wait_for(three_runs, timeout=120, what="three scheduled runs")
    kube.kubectl("patch", "flow", "tick", "-n", namespace, "--type", "merge", "-p", '{"spec":{"schedule":{"suspend":true}}}')
    for name in seen | {r["metadata"]["name"] for r in scheduled_runs(kube, namespace)}:
        fire = int(name.rsplit("-", 1)[1])
        assert name == f"tick-{fire}" and fire % 2 == 0

    def settled() -> list[dict[str, Any]] | None:
        runs = scheduled_runs(kube, namespace)
        done = [r for r in runs if (r.get("status") or {}).get("phase") == "Succeeded"]
        return runs if runs and len(done) == len(runs) == 1 else None

    [kept] = kube.wait_for(settled, timeout=120, what="history pruned to one succeeded run")
    assert kept["status"]["result"] == 42
    status = kube.get("flow", "tick", namespace)["status"]
    # The newest run is the one kept (a last run may have started just before the suspension).
    assert status["lastRunPhase"] == "Succeeded" and status["lastRun"] == kept["metadata"]["name"]
    assert status["lastScheduleTime"] and not status.get("nextScheduleTime")  # suspended: nothing next
    columns = kube.kubectl("get", "flow", "tick", "-n", namespace).stdout
    assert "Succeeded" in columns and "*/2 * * * * *" in columns


def test_forbid_never_runs_two_at_once(kube: Any, namespace: str, operator: Operator) -> None:
    slow = python_step("slow", "import time\n\ndef main():\n    time.sleep(4)\n    return 'done'\n")
    flow = flow_manifest("busy", [slow])
    flow["spec"]["schedule"] = {"cron": "* * * * * *", "concurrencyPolicy": "Forbid"}
    kube.apply(flow, namespace)
    most_active, finished = 0, 0
    deadline = time.monotonic() + 90
    while finished < 2 and time.monotonic() < deadline:
        runs = scheduled_runs(kube, namespace)
        phases = [(r.get("status") or {}).get("phase") for r in runs]
        most_active = max(most_active, sum(p not in ("Succeeded", "Failed", "Cancelled") for p in phases))
        finished = phases.count("Succeeded")
        time.sleep(0.3)
    kube.kubectl("patch", "flow", "busy", "-n", namespace, "--type", "merge", "-p", '{"spec":{"schedule":{"suspend":true}}}')
    assert finished >= 2, "the schedule did not start a second run once the first ended"
    assert most_active == 1
    held = kube.get("flow", "busy", namespace)["status"]
    assert held["lastRun"].startswith("busy-")


def test_after_an_operator_outage_only_the_latest_missed_time_is_started(kube: Any, namespace: str,
                                                                           operator: Operator) -> None:
    flow = flow_manifest("catchup", [python_step("a", "def main():\n    return 1\n")])
    flow["spec"]["schedule"] = {"cron": "*/2 * * * * *"}
    kube.apply(flow, namespace)
    kube.wait_for(lambda: scheduled_runs(kube, namespace) or None, timeout=120, what="a first scheduled run")
    operator.kill()
    down_at = time.time()
    time.sleep(9)  # four or five fire times pass with no operator
    operator.start()
    up_at = time.time()

    def after_restart() -> list[int] | None:
        fires = sorted(int(r["metadata"]["annotations"]["millrace.dev/scheduled-time"])
                       for r in scheduled_runs(kube, namespace))
        return fires if any(f >= up_at for f in fires) else None

    fires = kube.wait_for(after_restart, timeout=120, what="runs after the restart")
    kube.kubectl("patch", "flow", "catchup", "-n", namespace, "--type", "merge", "-p", '{"spec":{"schedule":{"suspend":true}}}')
    missed = [f for f in fires if down_at < f < up_at - 2]
    # CronJob's rule: at most one catch-up run for the times missed, never a burst.
    assert len(missed) <= 1, fires


COUNTER = '''
import wmill

def main():
    n = wmill.get_state() or 0
    wmill.set_state(n + 1)
    return [n]
'''


def test_a_scheduled_watcher_takes_each_item_once_and_keeps_its_state_apart_from_runs_by_hand(
        kube: Any, namespace: str, operator: Operator) -> None:
    """Windmill keeps a trigger script's state per schedule: the schedule's runs share one, a run by hand has its own."""
    trigger = python_step("watch", COUNTER)
    trigger["value"]["is_trigger"] = True
    flow = flow_manifest("watcher", [trigger, python_step("take", "def main(items):\n    return items\n",
                                                          items="results.watch")])
    flow["spec"]["schedule"] = {"cron": "*/2 * * * * *", "concurrencyPolicy": "Forbid", "successfulRunsHistoryLimit": 100}
    kube.apply(flow, namespace)

    def three_done() -> list[dict[str, Any]] | None:
        done = [r for r in scheduled_runs(kube, namespace) if (r.get("status") or {}).get("phase") == "Succeeded"]
        return done if len(done) >= 3 else None

    kube.wait_for(three_done, timeout=150, what="three scheduled runs")
    kube.kubectl("patch", "flow", "watcher", "-n", namespace, "--type", "merge", "-p", '{"spec":{"schedule":{"suspend":true}}}')
    kube.apply(run_manifest("watcher-by-hand", "watcher"), namespace)
    assert wait_phase(kube, namespace, "watcher-by-hand")["result"] == [0]

    def all_settled() -> list[dict[str, Any]] | None:
        runs = scheduled_runs(kube, namespace)
        return runs if all((r.get("status") or {}).get("phase") == "Succeeded" for r in runs) else None

    runs = sorted(kube.wait_for(all_settled, timeout=90, what="the scheduled runs settled"),
                  key=lambda r: int(r["metadata"]["annotations"]["millrace.dev/scheduled-time"]))
    taken = [item for r in runs for item in r["status"]["result"]]
    assert taken == list(range(len(runs))), taken
    states = kube.list("configmaps", namespace, "millrace.dev/kind=state")
    paths = sorted(s["metadata"]["annotations"]["millrace.dev/path"] for s in states)
    assert paths == ["watcher/schedule/watch", "watcher/watch"], paths


def test_replace_cancels_the_active_run_for_the_new_one(kube: Any, namespace: str, operator: Operator) -> None:
    slow = python_step("slow", "import time\n\ndef main():\n    time.sleep(30)\n    return 'done'\n")
    flow = flow_manifest("replaced", [slow])
    flow["spec"]["schedule"] = {"cron": "*/3 * * * * *", "concurrencyPolicy": "Replace"}
    kube.apply(flow, namespace)

    def two_cancelled() -> list[dict[str, Any]] | None:
        runs = scheduled_runs(kube, namespace)
        cancelled = [r for r in runs if (r.get("status") or {}).get("phase") == "Cancelled"]
        return runs if len(cancelled) >= 2 else None

    runs = kube.wait_for(two_cancelled, timeout=120, what="two runs replaced by newer ones")
    kube.kubectl("patch", "flow", "replaced", "-n", namespace, "--type", "merge", "-p", '{"spec":{"schedule":{"suspend":true}}}')
    by_fire = sorted(runs, key=lambda r: int(r["metadata"]["annotations"]["millrace.dev/scheduled-time"]))
    newest = by_fire[-1]
    assert (newest.get("status") or {}).get("phase") != "Cancelled", [r["metadata"]["name"] for r in by_fire]
    for older in by_fire[:-1]:
        assert (older.get("status") or {}).get("phase") in ("Cancelled", None), older.get("status")
    # A replaced run is cancelled by the schedule, and says so.
    cancelled = next(r for r in by_fire if (r.get("status") or {}).get("phase") == "Cancelled")
    assert "replaced by run replaced-" in json.dumps(cancelled["status"]), cancelled["status"]


def test_schedules_follow_their_timezone_across_a_dst_change(kube: Any, namespace: str, operator: Operator) -> None:
    """Europe/Berlin springs from 02:00 CET to 03:00 CEST on 2027-03-28, at 01:00 UTC. A daily
    03:00 fires at 01:00 UTC that day (02:00 UTC the day before), and 02:30, a time the change
    skips, fires at the first instant after the gap, the same 01:00 UTC (schedule/cron.py)."""
    operator.stop()
    # The operator's schedule clock starts a few seconds before the change (the controllable clock).
    operator.start(MILLRACE_SCHEDULE_CLOCK_START="2027-03-28T00:59:50Z")
    change = 1806195600  # 2027-03-28T01:00:00Z
    for name, cron in (("at-three", "0 0 3 * * *"), ("in-the-gap", "0 30 2 * * *")):
        flow = flow_manifest(name, [python_step("a", "def main():\n    return 1\n")])
        flow["spec"]["schedule"] = {"cron": cron, "timezone": "Europe/Berlin"}
        kube.apply(flow, namespace)

    def next_times() -> dict[str, str] | None:
        found = {n: (kube.get("flow", n, namespace).get("status") or {}).get("nextScheduleTime")
                 for n in ("at-three", "in-the-gap")}
        return found if all(found.values()) else None

    assert kube.wait_for(next_times, timeout=60, what="the next fire times") == {
        "at-three": "2027-03-28T01:00:00Z", "in-the-gap": "2027-03-28T01:00:00Z"}

    def fired() -> list[str] | None:
        names_ = sorted(r["metadata"]["name"] for r in scheduled_runs(kube, namespace))
        return names_ if len(names_) == 2 else None

    assert kube.wait_for(fired, timeout=60, what="one run of each schedule") == [
        f"at-three-{change}", f"in-the-gap-{change}"]
    for name in ("at-three", "in-the-gap"):
        kube.kubectl("patch", "flow", name, "-n", namespace, "--type", "merge", "-p", '{"spec":{"schedule":{"suspend":true}}}')
    status = kube.get("flow", "at-three", namespace)["status"]
    assert status["lastScheduleTime"] == "2027-03-28T01:00:00Z"
