"""`millrace resume`, `cancel`, `runs` and `show`: runs after the fact.

With `-n/--namespace`, resume and cancel act on a FlowRun in the cluster of
the current kubeconfig (also as `kubectl millrace resume ...`); without it,
on a local run.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import TYPE_CHECKING, Any

from ..errors import FlowError, Problem
from .kubectl import control

# The run records, the run status models and the engine's events are imported by the commands
# that read or continue a run: registering these commands costs `millrace validate` nothing.
if TYPE_CHECKING:
    from ..engine.events import Event
    from ..local.runner import LocalRun
    from ..model.loader import LoadedFlow
    from ..model.run import RunStatus


def register(sub: Any) -> None:
    resume = sub.add_parser("resume", help="approve a suspended run and let it go on")
    control.add_resume_options(resume)
    resume.add_argument("--output", choices=["text", "json"], default="text")
    resume.add_argument("-n", "--namespace", help="a FlowRun in this namespace of the cluster")

    cancel = sub.add_parser("cancel", help="cancel a run (a resume link's cancel URL disapproves its step instead)")
    control.add_cancel_options(cancel)
    cancel.add_argument("--output", choices=["text", "json"], default="text")
    cancel.add_argument("-n", "--namespace", help="a FlowRun in this namespace of the cluster")

    sub.add_parser("runs", help="list local runs")

    show = sub.add_parser("show", help="print one run with every step")
    show.add_argument("run")


def restart_state(options: argparse.Namespace, loaded: LoadedFlow) -> RunStatus | None:
    """`millrace run --from-run RUN --from STEP`: the state the new run starts from (None without them)."""
    if options.from_run is None and options.from_step is None:
        return None
    if options.from_run is None or options.from_step is None:
        missing = "--from-run" if options.from_run is None else "--from"
        raise FlowError.single(loaded.name, f"--from-run and --from go together: {missing} is missing", field=missing)
    if options.arg or options.args_file:
        raise FlowError.single(loaded.name, f"a restarted run gets the inputs of run '{options.from_run}': "
                                            "leave out --arg and --args-file", field="--arg")
    from ..engine.restart import RestartError, restarted
    from ..local.store import RunStore
    from ..model.run import RestartFrom

    store = RunStore()
    try:
        source, _, state = store.load(options.from_run)
    except KeyError:
        raise FlowError.single(loaded.name, f"no run '{options.from_run}' under {store.root}", field="--from-run") from None
    try:
        return restarted(loaded.name, loaded.flow, source.name, state, RestartFrom(run=options.from_run, step=options.from_step),
                         fields=("--from-run", "--from"))
    except RestartError as exc:
        raise FlowError([exc.problem]) from None


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
    """Resume or cancel a FlowRun, as `kubectl millrace resume|cancel` does."""
    from kubernetes import config as kube_config

    from ..cluster.kube import KubeApi

    kube_config.load_kube_config()
    return control.request(KubeApi(), options.namespace, options, cancel=options.command == "cancel")


def resume(options: argparse.Namespace) -> tuple[str, str, RunStatus]:
    from ..engine.events import Disapproved, Resumed
    from ..engine.resume_form import resume_form_problem

    payload = control.payload(options)

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
    if state.restarted_from:
        restart = state.restarted_from
        print(f"restarted from run {restart.run} at step '{restart.step}': the steps before it are that run's")
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
