"""`Flow.spec.schedule` as the pure decision's policy."""

from __future__ import annotations

from typing import Any, Mapping

from pydantic import ValidationError

from ..errors import Problem
from ..model.resources import Schedule
from .cron import CronError, parse_cron
from .plan import SchedulePolicy

# The state scope of a schedule's runs, in both shells: a trigger script's state is the schedule's own.
SCHEDULE_STATE_SCOPE = "schedule"


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


def schedule_problems(flow: str, spec: Mapping[str, Any]) -> list[Problem]:
    """What is wrong with a Flow spec's `schedule`, for `millrace validate` and the webhook."""
    raw = spec.get("schedule")
    if raw is None:
        return []
    try:
        schedule_policy(Schedule.model_validate(raw))
    except ValidationError as exc:
        return [Problem(flow, e["msg"], field=".".join(["spec.schedule", *map(str, e["loc"])])) for e in exc.errors()]
    except CronError as exc:
        return [Problem(flow, str(exc), field=f"spec.schedule.{exc.field}")]
    return []
