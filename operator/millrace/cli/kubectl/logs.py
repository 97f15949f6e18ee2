"""`logs RUN [STEP] [--follow]`: what a run's steps printed.

A step attempt's log is its pod's log while the pod exists; after (its Job
deleted), the end of it kept with its report (cluster/steplogs.py).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from typing import Any

from kubernetes.client.exceptions import ApiException

from ...cluster import names, steplogs
from ...cluster.reconcile import KIND_REPORT
from ...model.resources import FlowRunStatus
from .connect import Target
from .errors import PluginError
from .follow import ended
from .tables import status_of
from .view import read_run

POLL_S = 1.0  # how often --follow looks for the next step to start


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    logs = sub.add_parser("logs", parents=[common], help="what a run's steps printed",
                          description="The log of each script step of RUN (of STEP only, when given), its latest "
                                      "attempt unless --attempt says which: the pod's log while the pod exists, "
                                      f"else the end of it kept with the step's report (the last "
                                      f"{steplogs.LOG_TAIL_LINES:,} lines, at most {steplogs.LOG_TAIL_BYTES // 1024} KiB).")
    logs.add_argument("run", metavar="RUN")
    logs.add_argument("step", metavar="STEP", nargs="?", help="a step path: `load`, or `loop/3/inner` in a loop")
    logs.add_argument("--attempt", type=int, help="which attempt of STEP (default: its latest)")
    logs.add_argument("--follow", "-f", action="store_true",
                      help="go on printing as the steps run, one step after the other, until the run ends or suspends")


@dataclass(frozen=True)
class Attempt:
    path: str
    attempt: int
    report: dict[str, Any] | None  # its report ConfigMap, once the step reported


def _reports(target: Target, obj: dict[str, Any]) -> dict[tuple[str, int], dict[str, Any]]:
    run, uid = obj["metadata"]["name"], obj["metadata"]["uid"]
    selector = f"{names.LABEL_RUN}={names.label_value(run)},{names.LABEL_KIND}={KIND_REPORT}"
    found = {}
    for cm in sorted(target.kube.list_config_maps(target.namespace, selector),
                     key=lambda c: c["metadata"].get("creationTimestamp") or ""):
        annotations = cm["metadata"].get("annotations") or {}
        path, attempt = annotations.get(names.ANNOTATION_STEP_PATH), annotations.get(names.ANNOTATION_ATTEMPT, "")
        if path and attempt.isdigit() and names.owned(cm, uid, path, int(attempt)):  # anyone may make a ConfigMap
            found[(path, int(attempt))] = cm
    return found


def attempts(target: Target, obj: dict[str, Any], status: FlowRunStatus) -> list[Attempt]:
    """The run's script step attempts: those that reported (in that order), then those running."""
    reports = _reports(target, obj)
    out = [Attempt(path, attempt, cm) for (path, attempt), cm in reports.items()]
    out += [Attempt(path, st.attempts, None) for path, st in status.steps.items()
            if st.runs_script and st.attempts > 0 and (path, st.attempts) not in reports]
    return out


def chosen(options: argparse.Namespace, status: FlowRunStatus, found: list[Attempt]) -> list[Attempt]:
    """The attempts asked for: STEP's (or every step's) latest, or --attempt."""
    if options.attempt is not None and options.step is None:
        raise PluginError("--attempt needs a STEP")
    if options.step is not None:
        found = [a for a in found if a.path == options.step]
        st = status.steps.get(options.step)
        if not found and st is None:
            known = sorted({a.path for a in found} | {p for p, s in status.steps.items() if s.runs_script})
            raise PluginError(f"flowrun/{options.run} has no step '{options.step}'"
                              + (f" (its script steps: {', '.join(known[:12])})" if known else ""))
        if st is not None and not st.runs_script:
            raise PluginError(f"flowrun/{options.run}: step '{options.step}' is a '{st.type}' module, which runs "
                              "no script of its own and so has no log: name a step inside it")
    if options.attempt is not None:
        return [a for a in found if a.attempt == options.attempt]
    latest: dict[str, Attempt] = {}
    for attempt in found:
        if attempt.attempt >= latest.get(attempt.path, attempt).attempt:
            latest[attempt.path] = attempt
    return [a for a in found if latest[a.path] is a]


def _pod(target: Target, run: str, attempt: Attempt) -> dict[str, Any] | None:
    try:
        return steplogs.step_pod(target.kube, target.namespace, names.job_name(run, attempt.path, attempt.attempt))
    except ApiException as exc:
        if exc.status == 403:  # not allowed to list pods: the kept tail is what there is
            return None
        raise


def _kept(attempt: Attempt) -> str | None:
    return (attempt.report.get("data") or {}).get(steplogs.LOG_KEY) if attempt.report is not None else None


def _running(status: FlowRunStatus, attempt: Attempt) -> bool:
    st = status.steps.get(attempt.path)
    return st is not None and st.phase == "Running" and st.attempts == attempt.attempt


def print_log(target: Target, run: str, attempt: Attempt, follow: bool) -> bool:
    """Print the attempt's log (as it grows, with `follow`); False when its pod has not started yet."""
    pod = _pod(target, run, attempt)
    phase = ((pod or {}).get("status") or {}).get("phase")
    if pod is not None and phase != "Pending":
        try:
            if follow and phase == "Running":
                for chunk in steplogs.follow_pod_log(target.kube, target.namespace, pod["metadata"]["name"]):
                    sys.stdout.write(chunk)
                    sys.stdout.flush()
            else:
                sys.stdout.write(steplogs.pod_log(target.kube, target.namespace, pod["metadata"]["name"]))
            return True
        except ApiException:
            pass  # the pod went meanwhile, or its log cannot be read: its kept tail may say more
    kept = _kept(attempt)
    if kept is not None:
        print(f"(the pod of step {attempt.path} attempt {attempt.attempt} is gone: the end of its log, kept "
              "with its report)", file=sys.stderr)
        sys.stdout.write(kept)
        return True
    if follow and attempt.report is None:
        return False
    print(f"(no log of step {attempt.path} attempt {attempt.attempt}: its pod is gone and its report kept none)",
          file=sys.stderr)
    return True


def _header(attempt: Attempt, many: bool) -> None:
    if many:
        print(f"==> {attempt.path} (attempt {attempt.attempt}) <==", flush=True)


def logs(options: argparse.Namespace, target: Target) -> int:
    obj = read_run(target, options.run)
    status = status_of(obj)
    many = options.step is None
    if not options.follow:
        for attempt in chosen(options, status, attempts(target, obj, status)):
            _header(attempt, many)
            print_log(target, options.run, attempt, follow=False)
        return 0
    printed: set[tuple[str, int]] = set()
    headed: set[tuple[str, int]] = set()
    while True:
        left = [a for a in chosen(options, status, attempts(target, obj, status)) if (a.path, a.attempt) not in printed]
        for attempt in left:
            key = (attempt.path, attempt.attempt)
            if key not in headed:
                _header(attempt, many)
                headed.add(key)
            # An attempt that is not running any more will get no pod: what there is of it is printed now.
            if not print_log(target, options.run, attempt, follow=_running(status, attempt) or attempt.report is not None):
                break  # its pod has not started: look again
            printed.add(key)
        else:
            if ended(status) or _step_done(options.step, status):
                return 0
        time.sleep(POLL_S)
        obj = read_run(target, options.run)
        status = status_of(obj)


def _step_done(step: str | None, status: FlowRunStatus) -> bool:
    st = status.steps.get(step) if step is not None else None
    return st is not None and st.phase in ("Succeeded", "Failed", "Skipped")
