"""`millrace schedule FILE`: try a flow's schedule on this machine before committing it."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import FlowError, Problem
from .args import parse_args

if TYPE_CHECKING:
    from ..model.loader import LoadedFlow
    from ..model.resources import Schedule
    from ..model.run import RunStatus

# The schedule models and the cron parser are imported by this command only: every other command starts without them.

# Step states of scheduled runs live apart from those of runs started by hand, as Windmill keeps
# a trigger script's state per schedule.


def register(sub: Any) -> None:
    schedule = sub.add_parser("schedule", help="run a flow on its cron schedule, in the foreground")
    schedule.add_argument("file", type=Path, help="a Flow manifest (its spec.schedule) or a bare OpenFlow file with --cron")
    schedule.add_argument("--cron", help="the schedule, instead of or over the manifest's spec.schedule.cron")
    schedule.add_argument("--timezone", help="IANA timezone of the cron times (default: the manifest's, else UTC)")
    schedule.add_argument("--arg", action="append", default=[], metavar="KEY=VALUE", help="a flow input, over the schedule's args")
    schedule.add_argument("--args-file", type=Path)
    schedule.add_argument("--scripts", type=Path, action="append", default=[])
    schedule.add_argument("--max-runs", type=int, help="stop after this many runs (default: run until interrupted)")
    schedule.add_argument("--output", choices=["text", "json"], default="text", help="json: one outcome line per run")


def main(options: argparse.Namespace) -> int:
    from ..schedule.cron import CronError
    from ..schedule.policy import SCHEDULE_STATE_SCOPE, schedule_policy
    from .main import load_runnable
    from .outcome import EXIT_FAILED, EXIT_OK

    loaded, library, problems = load_runnable(options.file, options.scripts)
    spec = _schedule(loaded, options)
    try:
        policy = schedule_policy(spec)
    except CronError as exc:
        raise FlowError([Problem(loaded.name, str(exc), field=f"spec.schedule.{exc.field}")]) from None
    args = {**spec.args, **parse_args(loaded.name, loaded.flow.schema_, options.arg, options.args_file)}
    if options.output == "text":
        for problem in problems:
            print(str(problem), file=sys.stderr)
        limits = "history limits and concurrencyPolicy apply in the cluster; here runs never overlap"
        print(f"{loaded.name}: '{spec.cron}' in {spec.timezone} ({limits}); Ctrl-C stops", file=sys.stderr)

    from ..local.executor import LocalExecutor
    from ..local.progress import Progress
    from ..local.runner import LocalRun
    from ..local.scheduler import ForegroundSchedule

    with LocalExecutor() as executor:
        def run_flow(fire_time: float) -> tuple[str, RunStatus]:
            progress = Progress(loaded.name, loaded.flow) if options.output == "text" else None
            run = LocalRun(loaded=loaded, executor=executor, library=library, approvals=executor.api.backend,
                           observer=progress.update if progress else None, state_scope=SCHEDULE_STATE_SCOPE)
            return run.run_id, run.execute(dict(args))

        failed = ForegroundSchedule(loaded.name, policy, run_flow, _reporter(options.output, spec.timezone)).serve(
            options.max_runs)
    return EXIT_FAILED if failed else EXIT_OK


def _schedule(loaded: LoadedFlow, options: argparse.Namespace) -> Schedule:
    from pydantic import ValidationError

    from ..model.resources import Schedule

    raw = dict(((loaded.manifest or {}).get("spec") or {}).get("schedule") or {})
    if options.cron:
        raw["cron"] = options.cron
    if options.timezone:
        raw["timezone"] = options.timezone
    if not raw.get("cron"):
        raise FlowError([Problem(loaded.name, "no schedule: give --cron, or a Flow manifest with spec.schedule.cron",
                                 field="spec.schedule.cron")])
    try:
        return Schedule.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise FlowError([Problem(loaded.name, first["msg"], field=f"spec.schedule.{where}")]) from None


def _reporter(output: str, timezone: str) -> Any:
    from ..schedule.cron import parse_timezone

    zone = parse_timezone(timezone)

    def report(fire_time: float, state: RunStatus | None, name: str) -> None:
        when = dt.datetime.fromtimestamp(fire_time, tz=zone).isoformat()
        if state is None:
            print(f"{when}: {name}", file=sys.stderr)
            return
        outcome = "skipped" if state.skipped else state.phase.lower()
        if output == "json":
            print(json.dumps({"scheduled_for": when, "run": name, "status": outcome, "result": state.result,
                              "error": state.error.model_dump(exclude_none=True) if state.error else None},
                             default=str), flush=True)
        else:
            print(f"{when}: {name} {outcome}", file=sys.stderr)
            if state.result is not None:
                print(json.dumps(state.result, default=str), flush=True)

    return report
