"""`millrace resume`, `cancel`, `runs` and `show`: runs after the fact.

With `-n/--namespace`, resume and cancel act on a FlowRun in the cluster of
the current kubeconfig (also as `kubectl millrace resume ...`); without it,
on a local run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import TYPE_CHECKING, Any

from ..errors import FlowError, Problem

if TYPE_CHECKING:
    from ..engine.events import Event
    from ..local.runner import LocalRun
    from ..model.run import RunStatus

# The run store, the events and the models are imported by the commands that use them: `millrace
# validate` and `millrace run` load this module to register its commands, and need none of that.


def register(sub: Any) -> None:
    resume = sub.add_parser("resume", help="approve a suspended run and let it go on")
    resume.add_argument("run")
    resume.add_argument("--payload", default="null", help="JSON the next step sees as `resume`")
    resume.add_argument("--approver", default="cli")
    resume.add_argument("--disapprove", action="store_true",
                        help="refuse the suspended step: the run fails with SuspendedDisapproved "
                             "(or goes on with that error, with continue_on_disapprove_timeout)")
    resume.add_argument("--output", choices=["text", "json"], default="text")
    resume.add_argument("-n", "--namespace", help="a FlowRun in this namespace of the cluster")

    cancel = sub.add_parser("cancel", help="cancel a run (a resume link's cancel URL disapproves its step instead)")
    cancel.add_argument("run")
    cancel.add_argument("--reason", default="cancelled")
    cancel.add_argument("--by", default="cli")
    cancel.add_argument("--output", choices=["text", "json"], default="text")
    cancel.add_argument("-n", "--namespace", help="a FlowRun in this namespace of the cluster")

    sub.add_parser("runs", help="list local runs")

    show = sub.add_parser("show", help="print one run with every step")
    show.add_argument("run")


def _load(run_id: str) -> tuple[LocalRun, RunStatus]:
    # Imported when a run goes on: the commands that only read records stay quick.
    from ..local.executor import LocalExecutor
    from ..local.runner import LocalRun
    from ..local.store import RunStore

    store = RunStore()
    try:
        loaded, library, state = store.load(run_id)
    except KeyError:
        raise FlowError([Problem(run_id, f"no run '{run_id}' under {store.root}")]) from None
    executor = LocalExecutor()
    return LocalRun(loaded=loaded, executor=executor, library=library, store=store, run_id=run_id,
                    approvals=executor.api.backend), state


def _continue(options: argparse.Namespace, event_for: Any) -> tuple[str, str, RunStatus]:
    run, state = _load(options.run)
    if state.terminal:
        raise FlowError([Problem(run.loaded.name, f"run '{options.run}' already ended ({state.phase.lower()})")])
    event: Event = event_for(run, state)
    if options.output == "text":
        from ..local.progress import Progress

        run.observer = Progress(run.loaded.name, run.loaded.flow).update
    with run.executor:  # type: ignore[attr-defined]
        final = run.proceed(state, event)
    return run.run_id, run.loaded.name, final


def in_cluster(options: argparse.Namespace) -> int:
    """Resume or cancel a FlowRun: record the request; the operator applies it."""
    from kubernetes import config as kube_config

    from ..cluster.control import request_resume
    from ..cluster.kube import KubeApi

    kube_config.load_kube_config()
    cancel = options.command == "cancel"
    disapprove = not cancel and options.disapprove
    name = request_resume(KubeApi(), options.namespace, options.run,
                          payload=None if cancel or disapprove else _payload(options),
                          approver=options.by if cancel else options.approver, cancel=cancel,
                          reason=options.reason if cancel else "", disapprove=disapprove)
    what = "cancel" if cancel else "disapproval" if disapprove else "resume"
    print(f"flowrun/{options.run} {what} requested ({name})")
    return 0


def _payload(options: argparse.Namespace) -> Any:
    try:
        return json.loads(options.payload)
    except json.JSONDecodeError as exc:
        raise FlowError([Problem(options.run, f"--payload is not JSON: {exc}", field="payload")]) from None


def resume(options: argparse.Namespace) -> tuple[str, str, RunStatus]:
    from ..engine.events import Disapproved, Resumed
    from ..engine.resume_form import resume_form_problem

    payload = _payload(options)

    def event(run: LocalRun, state: RunStatus) -> Event:
        if state.phase != "Suspended" or not state.suspended_step:
            raise FlowError([Problem(run.loaded.name, f"run '{run.run_id}' is not suspended ({state.phase.lower()})")])
        if options.disapprove:
            return Disapproved(approver=options.approver, now=time.time())
        problem = resume_form_problem(run.loaded.name, run.loaded.flow, run.library, state.suspended_step, payload)
        if problem is not None:
            raise FlowError([problem])
        return Resumed(payload=payload, approver=options.approver, now=time.time())

    return _continue(options, event)


def cancel(options: argparse.Namespace) -> tuple[str, str, RunStatus]:
    from ..engine.events import CancelRequested

    return _continue(options, lambda run, state: CancelRequested(reason=options.reason, by=options.by, now=time.time()))


def list_runs() -> int:
    from ..local.store import RunStore

    records = RunStore().all_runs()
    if not records:
        print("no runs yet")
        return 0
    print(f"{'RUN':<48} {'FLOW':<24} {'PHASE':<10} {'STARTED':<20} DURATION")
    for record in records:
        status = record["status"]
        started = status.get("startedAt")
        finished = status.get("finishedAt")
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)) if started else "-"
        duration = f"{finished - started:.2f}s" if started and finished else "-"
        print(f"{record['run']:<48} {record['flow']:<24} {status['phase']:<10} {when:<20} {duration}")
    return 0


def show(options: argparse.Namespace) -> int:
    from ..local.store import RunStore

    store = RunStore()
    try:
        loaded, _, state = store.load(options.run)
    except KeyError:
        raise FlowError([Problem(options.run, f"no run '{options.run}' under {store.root}")]) from None
    print(f"run {options.run} · flow {loaded.name} · {state.phase.lower()}")
    if state.suspended_step:
        print(f"suspended at step '{state.suspended_step}': millrace resume {options.run} | millrace cancel {options.run}")
    for path, st in state.steps.items():
        took = f"{st.finished_at - st.started_at:.2f}s" if st.finished_at and st.started_at else ""
        print(f"  {path:<32} {st.phase.lower():<10} {took:>8}  attempts={st.attempts}")
        if st.error:
            print(f"    error: {st.error.name}: {st.error.message}")
            for line in st.error.stack.rstrip().splitlines():
                print(f"      {line}")
        elif st.phase == "Succeeded" and (st.runs_script or st.type == "identity"):
            print(f"    result: {json.dumps(st.result, default=str)[:500]}")
    if state.terminal:
        print("result:", json.dumps(state.result, indent=2, default=str))
    return 0


def print_suspended(run_id: str, state: RunStatus) -> None:
    print(f"run {run_id} suspended at step '{state.suspended_step}'. To go on:\n"
          f"  millrace resume {run_id} [--payload JSON] [--approver NAME]\n"
          f"  millrace cancel {run_id}", file=sys.stderr)
