"""`Flow.spec.schedule` as the pure decision's policy."""

from __future__ import annotations

from ..model.resources import Schedule
from .cron import parse_cron
from .plan import SchedulePolicy


def schedule_policy(spec: Schedule) -> SchedulePolicy:
    """Raises CronError naming `cron` or `timezone` when the schedule cannot be used."""
    return SchedulePolicy(
        cron=parse_cron(spec.cron, spec.timezone),
        suspend=spec.suspend,
        concurrency_policy=spec.concurrency_policy,
        starting_deadline_seconds=spec.starting_deadline_seconds,
        successful_runs_history_limit=spec.successful_runs_history_limit,
        failed_runs_history_limit=spec.failed_runs_history_limit,
    )
