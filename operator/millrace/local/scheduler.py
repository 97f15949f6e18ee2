"""`millrace schedule`: run a flow on its cron schedule in the foreground.

The same decision as in the cluster (millrace.schedule.plan) with the
clock of this machine. Runs happen one at a time in this process, so they
never overlap: a run still going at a fire time makes that time missed,
and only the most recent missed time is caught up afterwards, as CronJob
does after downtime.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from ..model.run import RunStatus
from ..schedule.plan import RunOutcome, ScheduledRun, SchedulePolicy, decide

# Runs the flow for a fire time; returns the run's id and final state.
RunFlow = Callable[[float], tuple[str, RunStatus]]
Report = Callable[[float, RunStatus | None, str], None]


@dataclass
class ForegroundSchedule:
    flow: str
    policy: SchedulePolicy
    run_flow: RunFlow
    report: Report
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    runs: list[ScheduledRun] = field(default_factory=list)

    def serve(self, max_runs: int | None = None) -> int:
        """Run until `max_runs` runs have started (forever when None); return how many failed."""
        since, last, started, failed = self.clock(), None, 0, 0
        while max_runs is None or started < max_runs:
            now = self.clock()
            decision = decide(self.flow, self.policy, since, last, now, self.runs)
            if decision.start is None:
                if decision.next_schedule_time is None:
                    self.report(now, None, "the schedule is suspended")
                    return failed
                self.sleep(max(0.0, decision.next_schedule_time - now))
                continue
            last = decision.last_schedule_time
            started += 1
            run_id, state = self.run_flow(decision.start)
            outcome: RunOutcome = "Failed" if state.phase in ("Failed", "Cancelled") else "Succeeded"
            failed += outcome == "Failed"
            self.runs = [*self.runs, ScheduledRun(decision.run_name or "", decision.start, outcome)]
            self.report(decision.start, state, run_id)
        return failed
