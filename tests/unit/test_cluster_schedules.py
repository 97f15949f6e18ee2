"""A Flow's schedule against a recording fake of the API: what is created, cancelled, deleted, and shown."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from millrace.cluster.schedules import ANNOTATION_SCHEDULED_TIME, due_soon, reconcile_schedule
from millrace.model.times import parse_time
from millrace.schedule.plan import run_name

HOUR = 3600.0
T0 = 1_764_633_600.0  # 2025-12-02T00:00:00Z, a fire time of "0 * * * *"


@dataclass
class FakeKube:
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)

    def list_flowruns(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        assert "millrace.dev/scheduled=true" in selector
        return list(self.runs.values())

    def create_flowrun(self, obj: dict[str, Any]) -> bool:
        name = obj["metadata"]["name"]
        self.calls.append(("create", name))
        if name in self.runs:
            return False
        self.runs[name] = {**obj, "metadata": {**obj["metadata"], "uid": f"uid-{name}"}, "status": {"phase": "Running"}}
        return True

    def create(self, obj: dict[str, Any]) -> bool:
        request = json.loads(obj["data"]["request"])
        assert request["cancel"] and request["approver"] == "schedule" and "replaced by run" in request["reason"]
        self.calls.append(("cancel", obj["metadata"]["ownerReferences"][0]["name"]))
        return True

    def delete_flowrun(self, namespace: str, name: str) -> None:
        self.calls.append(("delete", name))
        self.runs.pop(name, None)

    def finish(self, name: str, phase: str = "Succeeded", skipped: bool = False) -> None:
        self.runs[name]["status"] = {"phase": phase, "skipped": skipped}


def flow(schedule: dict[str, Any], status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"metadata": {"namespace": "ns", "name": "report", "uid": "u-1"},
            "spec": {"schedule": schedule}, "status": status or {}}


def test_the_first_pass_records_when_the_schedule_took_effect_and_starts_nothing() -> None:
    kube = FakeKube()
    status = reconcile_schedule(kube, flow({"cron": "0 * * * *"}), now=T0 + 60)
    assert kube.calls == []
    assert parse_time(status["schedule"]["since"]) == T0 + 60
    assert parse_time(status["nextScheduleTime"]) == T0 + HOUR


def test_a_due_time_creates_a_run_named_after_it_with_the_schedule_args_owned_by_the_flow() -> None:
    kube = FakeKube()
    first = reconcile_schedule(kube, flow({"cron": "0 * * * *", "args": {"x": 1}}), now=T0 + 60)
    status = reconcile_schedule(kube, flow({"cron": "0 * * * *", "args": {"x": 1}}, first), now=T0 + HOUR + 2)
    name = run_name("report", T0 + HOUR)
    assert kube.calls == [("create", name)]
    made = kube.runs[name]
    assert made["spec"] == {"flowRef": {"name": "report"}, "args": {"x": 1}}
    assert made["metadata"]["annotations"][ANNOTATION_SCHEDULED_TIME] == str(int(T0 + HOUR))
    assert made["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    assert parse_time(status["lastScheduleTime"]) == T0 + HOUR
    assert "lastRun" not in status  # the reconciler shows it, for every run of the Flow


def test_two_operators_deciding_the_same_time_make_one_run() -> None:
    kube = FakeKube()
    first = reconcile_schedule(kube, flow({"cron": "0 * * * *"}), now=T0 + 60)
    reconcile_schedule(kube, flow({"cron": "0 * * * *"}, first), now=T0 + HOUR + 1)
    # The second operator read the Flow before the first wrote its status.
    reconcile_schedule(kube, flow({"cron": "0 * * * *"}, first), now=T0 + HOUR + 1)
    assert len(kube.runs) == 1


def test_history_limits_prune() -> None:
    kube = FakeKube()
    schedule = {"cron": "0 * * * *", "successfulRunsHistoryLimit": 1}
    status = reconcile_schedule(kube, flow(schedule), now=T0 + 60)
    for hour in (1, 2, 3):
        status = reconcile_schedule(kube, flow(schedule, status), now=T0 + hour * HOUR + 1)
        kube.finish(run_name("report", T0 + hour * HOUR), skipped=hour == 3)
    status = reconcile_schedule(kube, flow(schedule, status), now=T0 + 3 * HOUR + 30)
    assert set(kube.runs) == {run_name("report", T0 + 3 * HOUR)}


def test_replace_cancels_the_active_run() -> None:
    kube = FakeKube()
    schedule = {"cron": "0 * * * *", "concurrencyPolicy": "Replace"}
    status = reconcile_schedule(kube, flow(schedule), now=T0 + 60)
    status = reconcile_schedule(kube, flow(schedule, status), now=T0 + HOUR + 1)
    reconcile_schedule(kube, flow(schedule, status), now=T0 + 2 * HOUR + 1)
    assert ("cancel", run_name("report", T0 + HOUR)) in kube.calls


def test_a_changed_cron_starts_counting_again() -> None:
    kube = FakeKube()
    status = reconcile_schedule(kube, flow({"cron": "0 * * * *"}), now=T0 + 60)
    changed = reconcile_schedule(kube, flow({"cron": "30 * * * *"}, status), now=T0 + 5 * HOUR)
    assert kube.calls == [] and parse_time(changed["schedule"]["since"]) == T0 + 5 * HOUR


def test_a_pass_is_needed_only_when_the_next_time_has_come() -> None:
    status = {"schedule": {"cron": "0 * * * *"}, "nextScheduleTime": "2025-12-02T01:00:00Z"}
    assert not due_soon(flow({"cron": "0 * * * *"}, status), now=T0 + 60)
    assert due_soon(flow({"cron": "0 * * * *"}, status), now=T0 + HOUR)
    assert due_soon(flow({"cron": "5 * * * *"}, status), now=T0 + 60)
    assert due_soon(flow({"cron": "0 * * * *"}), now=T0)


def test_the_schedule_clock_can_start_at_a_given_time_and_runs_at_real_speed() -> None:
    from millrace.cluster.schedule_handlers import clock_starting_at

    assert clock_starting_at(None) is time.time
    clock = clock_starting_at("2027-03-28T00:59:50Z")
    first = clock()
    assert 1806195590 <= first < 1806195595 and clock() >= first
