"""The cluster shell: one FlowRun reconciled with the same planner as locally.

Each pass runs in strict phases:

1. read: the FlowRun and what its steps left behind (Jobs, report
   ConfigMaps written by the step API, resume requests, child runs), turned
   into planner events and a list of repairs, with no side effect;
2. plan: the planner folds the events into the new state and actions;
3. prepare: each new attempt's Secret (named by the attempt key, so
   harmless if the status never names the attempt);
4. write the status, with optimistic concurrency (a conflict means: read
   again, and nothing was done yet);
5. act: repairs (recreate what a crash left out, stop stuck Jobs), then
   the planner's actions (create Jobs and child runs, cancel).

Why it is safe to kill the operator at any point: a step's outcome is in its
report ConfigMap before the step API answers; the status names every
attempt before its Job exists; Job and Secret names derive from the
attempt key, so starting an attempt again finds what the first try made.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Callable, cast

from kubernetes.client.exceptions import ApiException

from ..engine.actions import Action, CancelStep, RunFlow, RunStep
from ..engine.evaluate import Evaluator
from ..engine.events import CancelRequested, Disapproved, Event, Resumed, Start, StepFinished, Tick
from ..engine.library import Library, ScriptSource
from ..engine.planner import PlanContext, plan
from ..engine.restart import RestartError, restarted
from ..engine.resume_form import resume_form_problem
from ..errors import FlowError, Problem
from ..expressions import Sandbox
from ..engine.paths import module_at
from ..model.flow import OpenFlow, PathFlow, openflow_of
from ..model.loader import LoadedFlow, load_flow_document
from ..model.resources import FlowRunStatus, Runtime
from ..model.run import ErrorInfo, RestartFrom, StepState
from ..runtime.protocol import StepError, StepOutcome, StepReport
from ..runtime.stepapi.links import APPLY, WAIT, link_state
from ..schedule.policy import SCHEDULE_STATE_SCOPE
from ..telemetry.context import RunTrace, run_trace
from ..telemetry.otlp import Exporter
from ..runtime.stepapi.tokens import Claims, Signer
from . import names, observe
from .admission import flow_problems
from .crashpoints import crash_point
from .data import UnreadableData, data_mappings, resolve_library, uses_data
from .faults import refusal
from .jobs import RunMeta, attempt_deadline, runtime_config_map, shared_claim, step_objects
from .kube import Conflict, KubeApi
from .offload import InlineChunks, Offload, Unkeepable, check_status_size
from .outcomes import job_outcome
from .placement import claim_node
from .policy import StepPolicy, check_runtime
from .secrecy import Secrecy, args_secret, args_secret_name, read_args_secret
from .status import decorate, last_run_ops, phase_shown, wire_times
from .watched import Watched

KIND_REPORT = "report"
KIND_RESUME = "resume"
KIND_DEFINITION = "definition"
KIND_RESULT = "result"
JOB_KEY = "job.json"
RESULT_INLINE_LIMIT = 4096  # bytes of JSON kept in status; larger results stay in their report ConfigMap
RESULT_MAX = 900 * 1024  # a ConfigMap holds at most 1 MiB
# A step token outlives its attempt's deadline by this much (the pod's start is not counted in it).
TOKEN_GRACE_S = 300.0
ANNOTATION_REFUSED = "millrace.dev/refused"


@dataclass
class OperatorConfig:
    api_url: str
    signer: Signer
    default_images: dict[str, str] = field(default_factory=dict)
    # How long a step may wait for its shared volume to be bound before it fails.
    claim_timeout_s: float = 120.0
    # Even with no news, a run is looked at again this often.
    resync_s: float = 30.0
    # Runs reconciled at once (each worker holds one expression sandbox).
    workers: int = 4
    # A finished step's Job is deleted this long after it ended (its outcome is recorded by then).
    job_ttl_s: int = 3600
    # A finished top-level FlowRun (and with it everything it owns) is deleted this long
    # after it ended; None keeps it until someone deletes it.
    retention_s: float | None = None
    # What flows may ask of their step pods (the chart's stepPolicy).
    policy: StepPolicy = field(default_factory=StepPolicy)
    # Shared with the step API backend: the real values behind masked records.
    secrecy: Secrecy | None = None
    # A volume source for Python steps' installed packages (the chart's steps.pythonCache).
    python_cache: dict[str, Any] | None = None
    # The OTLP exporter of run and step spans, when one is configured.
    tracing: Exporter | None = None
    # The namespace whose labelled scripts hold Hub scripts (the chart's hub.namespace).
    hub_namespace: str | None = None


@dataclass
class Definition:
    loaded: LoadedFlow
    library: Library
    runtime: Runtime
    uses_data: bool = False


@dataclass
class ReconcileCache:
    """What never changes once read, shared by every worker: pinned definitions by run
    uid and large results by report name (a dict's get and set are atomic)."""

    definitions: dict[str, Definition] = field(default_factory=dict)
    large_results: dict[str, Any] = field(default_factory=dict)
    loop_values: dict[str, Any] = field(default_factory=dict)  # offloaded loop values by ConfigMap name (offload)
    inline_chunks: InlineChunks = field(default_factory=dict)  # whether a sealed chunk fits inline (offload)
    # What the watches show; None: read everything from the apiserver.
    watched: Watched | None = None
    # Runs (by uid) for which this process has made or checked the namespace's runtime ConfigMap.
    runtimes: set[str] = field(default_factory=set)


class RunReconciler:
    def __init__(self, kube: KubeApi, config: OperatorConfig, sandbox: Sandbox,
                 clock: Callable[[], float] = time.time, cache: ReconcileCache | None = None) -> None:
        self.kube = kube
        self.config = config
        self.sandbox = sandbox
        self.clock = clock
        cache = cache or ReconcileCache()
        self._definitions = cache.definitions
        self._large_results = cache.large_results
        self.offload = Offload(kube, cache.loop_values, cache.inline_chunks)
        self.watched = cache.watched
        self._runtimes = cache.runtimes
        self.secrecy = config.secrecy or Secrecy(kube)
        self._secrets: Sequence[str] = []

    def reconcile(self, namespace: str, name: str) -> tuple[bool, float | None]:
        """One pass. Returns (finished, wake_at): a finished run needs no resync, only its
        wake-up if it has one (its retention); retries itself on write conflicts."""
        while True:
            try:
                return self._pass(namespace, name)
            except Conflict:
                if self.watched is not None:
                    self.watched.drop_run(namespace, name)  # what the watch showed was stale: read it anew
                continue

    # --- one pass ------------------------------------------------------------------

    def _pass(self, namespace: str, name: str) -> tuple[bool, float | None]:
        obj = self._flowrun(namespace, name)
        if obj is None:
            return True, None
        uid = obj["metadata"]["uid"]
        self._secrets = self.secrecy.values(namespace)  # listed only if this pass masks or unmasks
        recorded = FlowRunStatus.model_validate(obj.get("status") or {})
        status = FlowRunStatus.model_validate(self.secrecy.restore(uid, "status", obj.get("status") or {}, self._secrets))
        if status.terminal:
            self._release(obj, status)
            return True, self._expire(obj, status)
        if not (obj.get("status") or {}).get("phase"):
            obj = self._mark_pending(obj, status)
        obj, trace, trace_notices = self._trace(obj, status)
        try:
            definition = self._definition(obj)
        except FlowError as exc:
            return self._fail(obj, status, ErrorInfo(name="InvalidFlow", message=str(exc)))
        restart = (obj.get("spec") or {}).get("restartFrom")
        try:
            if status.phase == "Pending" and restart:
                status = self._restarted(obj, definition, RestartFrom.model_validate(restart))
                # The steps copied from the earlier run did not run in this one: no Events, counts or spans for them.
                recorded = status
            start_args = (status.args if restart else self._start_args(obj)) if status.phase == "Pending" else {}
        except FlowError as exc:
            return self._fail(obj, status, ErrorInfo(name="InvalidFlow", message=str(exc)))
        except RestartError as exc:
            return self._fail(obj, status, ErrorInfo(name="InvalidRestart", message=str(exc)))
        except Unkeepable as exc:
            return self._fail(obj, status, exc.error)
        if start_args is None:
            return False, self.clock() + 1.0  # the inner flow's args Secret is not there yet
        meta = replace(self._meta(obj, definition), trace=trace)
        reading = self._read(obj, status, meta, definition, start_args)
        reading.notices.extend(trace_notices)
        try:
            variables, resources = data_mappings(self.kube, namespace) if definition.uses_data else ({}, {})
        except UnreadableData as exc:
            return self._fail(obj, status, ErrorInfo(name="UnreadableData", message=str(exc)))
        ctx = PlanContext(flow_name=definition.loaded.name, flow=definition.loaded.flow,
                          evaluator=Evaluator(self.sandbox, variables, resources), library=definition.library,
                          child_flows=True, depth=int((obj.get("spec") or {}).get("depth") or 0),
                          timeout_s=(obj.get("spec") or {}).get("timeoutS"))
        try:
            state = self._hydrate(obj, status)
        except Unkeepable as exc:
            return self._fail(obj, status, exc.error)
        actions: list[Action] = []
        jobs: dict[str, dict[str, Any]] = {}
        wake_at: float | None = None
        pending = list(reading.events)
        compacted: dict[str, StepState] = {}
        while pending:
            result = plan(ctx, state, pending.pop(0))
            # plan() copies the state it is given, so the copy is a FlowRunStatus too.
            state, wake_at = cast(FlowRunStatus, result.state), result.wake_at
            compacted.update(result.compacted)
            for action in result.actions:
                refused = self._prepare(meta, action, jobs) if isinstance(action, RunStep) else None
                if refused is None:
                    actions.append(action)
                else:
                    # The attempt cannot even be written down: it failed, as the planner will hear now.
                    pending.append(StepFinished(path=action.path, attempt=action.attempt, now=self.clock(),
                                                outcome=StepOutcome(ok=False, error=refused)))
        if reading.unreadable is not None and state.terminal:
            # Stopped as a cancel would stop it, but it is the record's fault, not a person's choice.
            state = state.model_copy(update={"phase": "Failed", "error": reading.unreadable})
        if any(link_state(path, attempt, state) == APPLY for path, attempt in reading.held):
            wake_at = self.clock()  # approvals that came early wait for this suspension: apply them now
        try:
            self._keep_result(obj, state)
            new_status = decorate(self._dehydrate(obj, state), obj, self.clock())
            # Equal to the record before masking: nothing happened, nothing to mask or write. A
            # record this process masked differs from the real values, so it is masked again below.
            unmasked = wire_times(new_status.model_dump(mode="json", by_alias=True, exclude_none=True))
            write = bool(actions) or _changed(obj.get("status") or {}, unmasked)
            document = unmasked
            if write:
                document = self._status_document(uid, new_status)
                check_status_size(document, name)
        except Unkeepable as exc:
            return self._fail(obj, status, exc.error)
        if write and (actions or _changed(obj.get("status") or {}, document)):
            try:
                self._written(self.kube.replace_flowrun_status(obj, document))
            except ApiException as exc:
                refused = refusal(exc, f"the status of FlowRun {name}")
                if refused is None:
                    raise
                return self._fail(obj, status, ErrorInfo(name=refused.name, message=refused.message))
        crash_point("after-status")
        if new_status.phase != recorded.phase:
            self._tell_flow(obj, new_status)
        self._repair(obj, meta, definition, reading.repairs)
        self._launch(obj, meta, definition, actions, jobs)
        observe.record(self.kube, obj, reading.notices + observe.transitions(name, recorded, FlowRunStatus.model_validate(document), compacted),
                       self.clock(), self.config.tracing, trace, _traced_flow(obj))
        if new_status.terminal:
            self._release(obj, new_status)
            return True, self._expire(obj, new_status)
        return False, wake_at

    def _mark_pending(self, obj: dict[str, Any], status: FlowRunStatus) -> dict[str, Any]:
        """A new run's first write, before any other work: phase Pending, so that `kubectl get` tells
        a run the operator has taken up (however long pinning its flow takes) from one it has not seen."""
        written = self.kube.replace_flowrun_status(obj, self._status_document(obj["metadata"]["uid"],
                                                                               decorate(status, obj, self.clock())))
        self._written(written)
        self._tell_flow(written, status, take=True)
        return written

    def _tell_flow(self, obj: dict[str, Any], status: FlowRunStatus, take: bool = False) -> None:
        """The Flow's LAST RUN: a run of a Flow (by flowRef) becomes it when the operator takes it up;
        its phase changes show there while no newer run has taken its place. Best effort: the run
        does not depend on it."""
        flow = ((obj.get("spec") or {}).get("flowRef") or {}).get("name")
        if not flow:
            return
        namespace, run = obj["metadata"]["namespace"], obj["metadata"]["name"]
        try:
            if take:
                self.kube.patch_flow_status(namespace, flow, {"lastRun": run, "lastRunPhase": phase_shown(status)})
            else:
                self.kube.json_patch_flow_status(namespace, flow, last_run_ops(run, status))
        except ApiException as exc:  # 422: a newer run shows there (the test failed); 404: the Flow is gone
            if exc.status not in (404, 422):
                observe.LOG.warning("could not show run %s on Flow %s: %s", run, flow, exc.reason)

    def _status_document(self, uid: str, status: FlowRunStatus) -> dict[str, Any]:
        """What FlowRun.status is to hold: secret values masked, then times as RFC 3339."""
        recorded = self.secrecy.record(uid, "status", status.model_dump(mode="json", by_alias=True, exclude_none=True),
                                       self._secrets)
        return wire_times(recorded)

    def _flowrun(self, namespace: str, name: str) -> dict[str, Any] | None:
        found = self.watched.run(namespace, name) if self.watched is not None else None
        return found if found is not None else self.kube.get_flowrun(namespace, name)

    def _trace(self, obj: dict[str, Any], status: FlowRunStatus) -> tuple[dict[str, Any], RunTrace, list[observe.Transition]]:
        """The run's trace context; a run without one gets its own, written into its annotation
        (before the status write, which then carries the new resourceVersion)."""
        meta = obj["metadata"]
        trace, problem = _run_trace(obj)
        if problem is not None:
            # Said once, when the run starts; its spans then form a trace of their own.
            notices = [observe.Transition("InvalidTraceparent", f"annotation {names.ANNOTATION_TRACEPARENT}: {problem}"[:1024],
                                          True)] if status.phase == "Pending" else []
            return obj, trace, notices
        if names.ANNOTATION_TRACEPARENT not in (meta.get("annotations") or {}):
            annotated = self.kube.annotate_flowrun(meta["namespace"], meta["name"], {names.ANNOTATION_TRACEPARENT: trace.traceparent})
            if annotated is not None:  # None: deleted meanwhile, as the rest of the pass finds
                obj = annotated
                self._written(obj)
        return obj, trace, []

    def _written(self, obj: dict[str, Any]) -> None:
        """The run as the status write left it: the next pass starts from it, not from an older watch event."""
        if self.watched is not None:
            self.watched.put_run(obj)

    def _records(self, namespace: str, run: str) -> dict[str, dict[str, Any]]:
        """The run's report and resume records."""
        if self.watched is not None:
            return self.watched.records(namespace, run)
        selector = f"{names.LABEL_RUN}={names.label_value(run)},{names.LABEL_KIND} in ({KIND_REPORT},{KIND_RESUME})"
        return {cm["metadata"]["name"]: cm for cm in self.kube.list_config_maps(namespace, selector)}

    def _expire(self, obj: dict[str, Any], status: FlowRunStatus) -> float | None:
        """Delete a finished run past its retention; else when to look again (None: never).
        An inner flow's run goes with its parent."""
        if self.config.retention_s is None or names.LABEL_PARENT in (obj["metadata"].get("labels") or {}):
            return None
        due = (status.finished_at or self.clock()) + self.config.retention_s
        if self.clock() < due:
            return due
        self.kube.delete_flowrun(obj["metadata"]["namespace"], obj["metadata"]["name"])
        return None

    def _fail(self, obj: dict[str, Any], status: FlowRunStatus, error: ErrorInfo) -> tuple[bool, float | None]:
        """End the run as Failed on the last status the API accepted, with nothing else changed."""
        failed = status.model_copy(update={"phase": "Failed", "finished_at": self.clock(), "error": error})
        new_status = decorate(failed, obj, self.clock())
        self._written(self.kube.replace_flowrun_status(obj, self._status_document(obj["metadata"]["uid"], new_status)))
        self._tell_flow(obj, new_status)
        observe.record(self.kube, obj, observe.transitions(obj["metadata"]["name"], status, new_status), self.clock(),
                       self.config.tracing, _run_trace(obj)[0], _traced_flow(obj))
        self._release(obj, new_status)
        return True, self._expire(obj, new_status)

    # --- the pinned definition ---------------------------------------------------------

    def _definition(self, obj: dict[str, Any]) -> Definition:
        meta = obj["metadata"]
        key = meta["uid"]
        if key in self._definitions:
            return self._definitions[key]
        cm_name = names.definition_name(meta["name"])
        stored = self.kube.get_config_map(meta["namespace"], cm_name)
        if stored is None:
            document = self._resolve_flow(obj)
            flow = load_flow_document(openflow_of(document["spec"]), document["name"]).flow
            library = resolve_library(self.kube, meta["namespace"], flow, self.config.hub_namespace)
            document["scripts"] = {p: {"language": s.language, "content": s.content, "lock": s.lock}
                                   for p, s in library.scripts.items()}
            document["flows"] = {p: f.model_dump(mode="json", by_alias=True, exclude_none=True) for p, f in library.flows.items()}
            body: dict[str, Any] = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": cm_name, "namespace": meta["namespace"],
                             "labels": {names.LABEL_RUN: names.label_value(meta["name"]), names.LABEL_KIND: KIND_DEFINITION},
                             "ownerReferences": [_owner(obj)]},
                "data": {"definition": json.dumps(document)},
            }
            # Another pass may have pinned it meanwhile: then its copy is the one that counts.
            stored = body if self.kube.create(body) else self.kube.get_config_map(meta["namespace"], cm_name)
            assert stored is not None
        if not names.owned(stored, meta["uid"]):
            raise FlowError.single(meta["name"], names.foreign("ConfigMap", stored, f"run {meta['name']}"))
        document = json.loads(stored["data"]["definition"])
        # The same policy as the webhook's: a cluster without the webhook runs no pod the policy refuses.
        check_runtime(document["name"], document["spec"].get("runtime"), self.config.policy)
        runtime = Runtime.model_validate(document["spec"].get("runtime") or {})
        loaded = load_flow_document(openflow_of(document["spec"]), document["name"])
        library = Library(
            scripts={p: ScriptSource(p, s["language"], s["content"], s.get("lock"))
                     for p, s in document.get("scripts", {}).items()},
            flows={p: OpenFlow.model_validate(f) for p, f in document.get("flows", {}).items()},
        )
        # The webhook's checks, again: a cluster without the webhook runs no flow `millrace validate` (or the policy) refuses.
        problems = flow_problems(document["name"], document["spec"], self.sandbox, library, self.config.policy)
        errors = [p for p in problems if not p.warning]
        if errors:
            raise FlowError(errors)
        definition = Definition(loaded, library, runtime, uses_data=uses_data(document["spec"]))
        self._definitions[key] = definition
        return definition

    def _resolve_flow(self, obj: dict[str, Any]) -> dict[str, Any]:
        """The flow this run pins: a copy, so editing the Flow later changes nothing."""
        spec = obj.get("spec") or {}
        meta = obj["metadata"]
        if spec.get("flow"):
            return {"name": meta["name"], "generation": None, "spec": spec["flow"]}
        ref = (spec.get("flowRef") or {}).get("name")
        if not ref:
            raise FlowError.single(meta["name"], "a FlowRun needs spec.flowRef.name or spec.flow", field="spec")
        flow = self.kube.get_flow(meta["namespace"], ref)
        if flow is None:
            raise FlowError.single(meta["name"], f"Flow '{ref}' not found in namespace '{meta['namespace']}'", field="spec.flowRef.name")
        return {"name": ref, "generation": flow["metadata"].get("generation"), "spec": flow["spec"]}

    def _meta(self, obj: dict[str, Any], definition: Definition) -> RunMeta:
        meta = obj["metadata"]
        return RunMeta(
            namespace=meta["namespace"],
            run=meta["name"],
            run_uid=meta["uid"],
            flow=definition.loaded.name,
            api_url=self.config.api_url,
            same_worker=bool(definition.loaded.flow.value.same_worker),
            runtime=definition.runtime,
            default_images={**self.config.default_images},
            policy=self.config.policy,
            python_cache=self.config.python_cache,
            state_scope=SCHEDULE_STATE_SCOPE if (meta.get("labels") or {}).get(names.LABEL_SCHEDULED) == "true" else "",
        )

    # --- a run restarted from a step of an earlier run ------------------------------------

    def _restarted(self, obj: dict[str, Any], definition: Definition, restart: RestartFrom) -> FlowRunStatus:
        """The state a run with spec.restartFrom starts from: the earlier run's steps before the
        step, with every value they hold read back, so this run never reads the earlier one again."""
        meta, fields = obj["metadata"], ("spec.restartFrom.run", "spec.restartFrom.step")
        flow = definition.loaded.name

        def refuse(message: str) -> RestartError:
            return RestartError(Problem(flow, message, field=fields[0]))

        spec = obj.get("spec") or {}
        given = next((k for k in ("args", "argsSecret", "preprocess") if spec.get(k)), None)
        if given is not None:
            raise RestartError(Problem(flow, f"a restarted run gets the args of run '{restart.run}': leave it out",
                                       field=f"spec.{given}"))
        if restart.run == meta["name"]:
            raise refuse("a run cannot restart itself")
        source = self.kube.get_flowrun(meta["namespace"], restart.run)
        if source is None:
            raise refuse(f"no FlowRun '{restart.run}' in namespace '{meta['namespace']}'")
        source_spec = source.get("spec") or {}
        source_flow = (source_spec.get("flowRef") or {}).get("name") or source["metadata"]["name"]
        recorded = FlowRunStatus.model_validate(self.secrecy.restore(
            source["metadata"]["uid"], "status", source.get("status") or {}, self._secrets))
        state = restarted(flow, definition.loaded.flow, source_flow, self._hydrate(source, recorded), restart, fields)
        for path, st in state.steps.items():
            if st.result is not None and (st.runs_script or st.type == "flow") and _large(st.result):
                # This run's own copy of a large result, where the status points (a report of this run).
                st.result_ref = names.report_name(meta["name"], path, st.attempts)
                self._write_report(obj, path, st.attempts, self.secrecy.record(
                    meta["uid"], st.result_ref, StepReport(ok=True, result=st.result).model_dump(mode="json"), self._secrets))
                self._large_results[st.result_ref] = st.result
        return FlowRunStatus.model_validate(state.model_dump(by_alias=True))

    # --- events ------------------------------------------------------------------------

    def _start_args(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        """spec.args, with those of spec.argsSecret over them; None while that Secret does not exist yet."""
        spec = obj.get("spec") or {}
        args = dict(spec.get("args") or {})
        if spec.get("argsSecret"):
            hidden = read_args_secret(self.kube, obj, spec["argsSecret"])
            if hidden is None:
                return None
            args.update(hidden)
        return args

    def _read(self, obj: dict[str, Any], status: FlowRunStatus, meta: RunMeta,
              definition: Definition, start_args: dict[str, Any]) -> Reading:
        """What happened since the status was written, and what to repair once it is: reads only."""
        now = self.clock()
        if status.phase == "Pending":
            return Reading([Start(args=start_args, now=now, preprocess=bool((obj.get("spec") or {}).get("preprocess")))])
        events: list[Event] = []
        repairs: list[Repair] = []
        records = self._records(meta.namespace, meta.run)
        for path, st in status.steps.items():
            report = records.get(names.report_name(meta.run, path, st.attempts))
            if st.phase == "Running" and st.type == "flow" and st.attempts:
                if report is not None:  # the child run could not be created: the operator recorded why
                    events.append(StepFinished(path=path, attempt=st.attempts, now=now,
                                               outcome=_trusted_report(report, meta.run_uid, path, st.attempts)))
                    continue
                child = self.kube.get_flowrun(meta.namespace, names.child_run_name(meta.run, path, st.attempts))
                if child is not None and not names.owned(child, meta.run_uid, path, st.attempts):
                    events.append(StepFinished(path=path, attempt=st.attempts, now=now, outcome=_foreign(
                        names.foreign("FlowRun", child, f"attempt {path}/{st.attempts} of run {meta.run}"))))
                    continue
                if child is None:
                    # The operator stopped between naming the child run and creating it.
                    repairs.append(RecreateChild(path, st.attempts))
                    continue
                child_status = self.secrecy.restore(child["metadata"]["uid"], "status", child.get("status") or {},
                                                    self._secrets)
                if not child_status.get("phase") or child_status["phase"] == "Pending":
                    # The operator may have stopped between creating the child run and its args Secret.
                    repairs.append(RecreateChildArgs(child, st.input or {}))
                if child_status.get("phase") in ("Succeeded", "Failed", "Cancelled"):
                    self.secrecy.forget(child["metadata"]["uid"])
                outcome = _child_outcome({**child, "status": child_status})
                ref = child_status.get("resultRef")
                if outcome is not None and outcome.ok and ref:
                    # Too large for the child's status: it is whole in the child's result ConfigMap.
                    kept = self.kube.get_config_map(meta.namespace, ref)
                    outcome = _trusted_report(kept, child["metadata"]["uid"]) if kept is not None else StepOutcome(ok=False, error=StepError(
                        name="ResultMissing", message=f"inner flow run {child['metadata']['name']}: ConfigMap {ref} is gone"))
                if outcome is not None:
                    events.append(StepFinished(path=path, attempt=st.attempts, outcome=outcome, now=now))
                continue
            if st.phase != "Running" or not st.runs_script or st.not_before is not None:
                continue
            if report is not None:
                events.append(StepFinished(path=path, attempt=st.attempts, now=now,
                                           outcome=self._report_outcome(obj, report, path, st.attempts)))
                continue
            # Read by name: a list of the run's Jobs would grow with every finished step (they stay
            # for their TTL), making each pass of a long loop slower than the one before.
            job = self.kube.get_job(meta.namespace, names.job_name(meta.run, path, st.attempts))
            if job is not None and not names.owned(job, meta.run_uid, path, st.attempts):
                events.append(StepFinished(path=path, attempt=st.attempts, now=now, outcome=_foreign(
                    names.foreign("Job", job, f"attempt {path}/{st.attempts} of run {meta.run}"))))
                continue
            if job is None:
                found = self._without_job(meta, path, st.attempts, now)
                if isinstance(found, StepFinished):
                    events.append(found)
                    continue
                if found is not None:
                    repairs.append(found)
                    continue
            verdict = job_outcome(self.kube, meta.namespace, job, now, self.config.claim_timeout_s)
            if verdict.outcome is not None:
                # The step may have reported after the records were listed, then ended:
                # its report, read again now, says more than its Job.
                late = self.kube.get_config_map(meta.namespace, names.report_name(meta.run, path, st.attempts))
                outcome = self._report_outcome(obj, late, path, st.attempts) if late is not None else verdict.outcome
                events.append(StepFinished(path=path, attempt=st.attempts, outcome=outcome, now=now))
                if verdict.stop and job is not None:
                    repairs.append(StopJob(job["metadata"]["name"]))
        reading = self._resumes(records, status, definition, meta.run_uid, now)
        events.extend(reading.events)
        if (obj.get("spec") or {}).get("cancel"):
            events.append(CancelRequested(reason="spec.cancel is true", by="kubernetes", now=now))
        return Reading(events or [Tick(now=now)], repairs, reading.unreadable, reading.notices, reading.held)

    def _without_job(self, meta: RunMeta, path: str, attempt: int, now: float) -> StepFinished | RecreateJob | None:
        """What the Secret of a running attempt with no Job says: the attempt failed (its Secret is
        not its own, or a foreign Job held the Job's name), its Job is to be made from the manifest
        kept (the operator stopped between naming the attempt and creating it), or None: its Job
        was made and is gone, which its outcome tells."""
        secret_name = names.step_secret_name(meta.run, path, attempt)
        secret = self.kube.get_secret(meta.namespace, secret_name)
        if secret is None:
            return None
        if not names.owned(secret, meta.run_uid, path, attempt):
            # Put in place of the attempt's own since: no Job is made from what it holds.
            return StepFinished(path=path, attempt=attempt, now=now, outcome=_foreign(
                names.foreign("Secret", secret, f"attempt {path}/{attempt} of run {meta.run}")))
        refused = (secret["metadata"].get("annotations") or {}).get(ANNOTATION_REFUSED)
        if refused:
            return StepFinished(path=path, attempt=attempt, now=now, outcome=_foreign(refused))
        stored = None if _job_created(secret) else _stored_job(secret)
        return RecreateJob(path, attempt, secret_name, stored) if stored is not None else None

    def _resumes(self, records: dict[str, dict[str, Any]], status: FlowRunStatus, definition: Definition,
                 run_uid: str, now: float) -> Reading:
        """Resume and cancel requests not applied yet, in the order they came, and the
        attempts whose coming suspension some of them wait for.

        A record made through a link names the attempt whose suspension it is
        for (runtime/stepapi/links.py): it waits while that attempt runs, and is
        dropped once that suspension is over. One made by `millrace resume` acts
        on whatever the run waits for."""
        pending = sorted(
            (cm for cm in records.values()
             if cm["metadata"].get("labels", {}).get(names.LABEL_KIND) == KIND_RESUME
             and cm["metadata"]["name"] not in status.applied_resumes and names.owned(cm, run_uid)),
            key=lambda cm: cm["metadata"].get("creationTimestamp") or "",
        )
        reading = Reading([])
        for cm in pending:
            record = cm["metadata"]["name"]
            try:
                request = json.loads((cm.get("data") or {})["request"])
                if not isinstance(request, dict):
                    raise ValueError("it is not a JSON object")
            except (KeyError, ValueError) as exc:
                status.applied_resumes.append(record)
                problem = f"resume record {record} is unreadable: {exc if not isinstance(exc, KeyError) else 'it has no request'}"
                reading.events.append(CancelRequested(reason=problem, by="millrace", now=now))
                reading.unreadable = ErrorInfo(name="InvalidResume", message=problem)
                return reading
            if request.get("path") is not None:
                bound_to = (request["path"], int(request.get("attempt") or 0))
                bound = link_state(*bound_to, status)
                if bound == WAIT:
                    reading.held.add(bound_to)
                    continue
                if bound != APPLY:
                    status.applied_resumes.append(record)
                    continue
            status.applied_resumes.append(record)
            if request.get("disapprove"):
                # A resume link's cancel URL disapproves the suspended step: the run fails, it is not cancelled.
                reading.events.append(Disapproved(approver=request.get("approver") or "anonymous", now=now))
                continue
            if request.get("cancel"):
                reading.events.append(CancelRequested(reason=request.get("reason") or "cancelled",
                                                      by=request.get("approver") or "anonymous", now=now))
                continue
            if status.suspended_step:
                misfit = resume_form_problem(definition.loaded.name, definition.loaded.flow, definition.library,
                                             status.suspended_step, request.get("payload"))
                if misfit is not None:
                    # Refused as `millrace resume` refuses it locally: the run keeps waiting.
                    reading.notices.append(observe.Transition("ResumeRefused", f"resume record {record}: {misfit}"[:1024],
                                                              warning=True, step=status.suspended_step))
                    continue
            reading.events.append(Resumed(payload=request.get("payload"), approver=request.get("approver") or "anonymous",
                                          now=now))
        return reading

    # --- large results -------------------------------------------------------------------

    def _hydrate(self, obj: dict[str, Any], recorded: FlowRunStatus) -> FlowRunStatus:
        """Bring what is kept in ConfigMaps back, for the planner and expressions: results in
        report ConfigMaps, loop values (offload). `recorded` stays as it is, to fail on.

        A recorded result never changes: each is read once per operator process."""
        meta = obj["metadata"]
        status = recorded.model_copy(update={"steps": self.offload.load(obj, recorded.steps)})
        for path, st in status.steps.items():
            if st.result_ref:
                if st.result_ref not in self._large_results:
                    cm = self.kube.get_config_map(meta["namespace"], st.result_ref)
                    if cm is None:
                        continue
                    owner = obj
                    if st.type == "flow" and not names.owned(cm, meta["uid"]):
                        # An inner flow's large result is kept by its child run, which this run owns
                        # (a restarted run keeps its own copy: a report of this run).
                        child = self.kube.get_flowrun(meta["namespace"], names.child_run_name(meta["name"], path, st.attempts))
                        if child is None or not names.owned(child, meta["uid"], path, st.attempts):
                            continue
                        owner = child
                    self._large_results[st.result_ref] = self._report_outcome(owner, cm).result
                status.steps[path] = st.model_copy(update={"result": self._large_results[st.result_ref]})
        return status

    def _dehydrate(self, obj: dict[str, Any], status: FlowRunStatus) -> FlowRunStatus:
        """The status as written: results over the inline limit are replaced by the name of
        the ConfigMap that holds them (a step's report, an inner flow's or this run's result),
        large loop values by the ConfigMaps offload keeps them in. Copies only what changes."""
        run = obj["metadata"]["name"]
        steps: dict[str, StepState] = {}
        for path, st in status.steps.items():
            st = self.offload.store(obj, path, st, self._secrets)
            if st.phase == "Succeeded" and st.result is not None and (st.runs_script or st.type == "flow"):
                if _large(st.result):
                    own = (names.report_name(run, path, st.attempts) if st.runs_script
                           else result_name(names.child_run_name(run, path, st.attempts)))
                    st = st.model_copy(update={"result_ref": st.result_ref or own, "result": None})
            steps[path] = st
        update: dict[str, Any] = {"steps": steps}
        if status.result is not None and _large(status.result):
            update |= {"result_ref": result_name(run), "result": None}
        return status.model_copy(update=update)

    def _keep_result(self, obj: dict[str, Any], state: FlowRunStatus) -> None:
        """Before the status points at it: the ConfigMap of a result too large for the status."""
        if state.result is None or not _large(state.result):
            return
        meta = obj["metadata"]
        self.kube.create({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": result_name(meta["name"]), "namespace": meta["namespace"],
                         "labels": {names.LABEL_RUN: names.label_value(meta["name"]), names.LABEL_KIND: KIND_RESULT},
                         "ownerReferences": [_owner(obj)]},
            "data": {"report": StepReport(ok=True, result=state.result).model_dump_json()},
        })

    # --- actions --------------------------------------------------------------------------

    def _prepare(self, meta: RunMeta, action: RunStep, jobs: dict[str, dict[str, Any]]) -> StepError | None:
        """Before the status names a new attempt: its Secret, which also keeps its Job
        manifest, for recovery. Idempotent: an existing one is adopted only if it is this
        attempt's. The Job manifest goes in `jobs` by Secret name. Returns why the attempt
        cannot start: the API refused its objects for good, or objects of its names are not
        this attempt's (ForeignObject)."""
        if meta.same_worker:
            meta = replace(meta, node=claim_node(self.kube, meta.namespace, meta.run))
        deadline = attempt_deadline(action.timeout_s, meta.runtime.active_deadline_seconds)
        token = self.config.signer.issue(Claims(
            run=f"{meta.namespace}/{meta.run}", run_uid=meta.run_uid, flow=meta.flow, path=action.path,
            step_id=action.step_id, attempt=action.attempt, state_scope=meta.state_scope,
            expires_at=self.clock() + deadline + TOKEN_GRACE_S if deadline else None))
        secret, job = step_objects(meta, action, token)
        job["spec"]["ttlSecondsAfterFinished"] = self.config.job_ttl_s
        secret["stringData"][JOB_KEY] = json.dumps(job)
        what = f"attempt {action.key} of run {meta.run}"
        try:
            problems = [self._runtime(meta.namespace, meta.run_uid)]
            if meta.same_worker:
                problems.append(self.kube.create_owned(shared_claim(meta), f"run {meta.run}", meta.run_uid))
            problems.append(self.kube.create_owned(secret, what, meta.run_uid, action.path, action.attempt))
        except ApiException as exc:
            refused = refusal(exc, f"the inputs of step {action.path} attempt {action.attempt}")
            if refused is None:
                raise
            return refused
        problem = next((p for p in problems if p), None)
        if problem:
            # An object of the attempt's name that is not the attempt's: nothing is adopted.
            return StepError(name="ForeignObject", message=problem)
        jobs[secret["metadata"]["name"]] = job
        return None

    def _runtime(self, namespace: str, run_uid: str) -> str | None:
        """Make the namespace's runtime ConfigMap, or check it, once per run (so one deleted meanwhile
        is made again by the next run); why it cannot be used, if so."""
        if run_uid in self._runtimes:
            return None
        body = runtime_config_map(namespace)
        if not self.kube.create(body):
            found = self.kube.read("ConfigMap", namespace, body["metadata"]["name"])
            if found is not None and ((found.get("metadata") or {}).get("labels") != body["metadata"]["labels"]
                                      or found.get("data") != body["data"]):
                return (f"ConfigMap {namespace}/{body['metadata']['name']} exists but does not hold this version's "
                        "wrappers and SDK as millrace made them: it is left alone, remove it")
        self._runtimes.add(run_uid)
        return None

    def _launch(self, obj: dict[str, Any], meta: RunMeta, definition: Definition, actions: list[Action],
                jobs: dict[str, dict[str, Any]]) -> None:
        for action in actions:
            if isinstance(action, RunStep):
                secret_name = names.step_secret_name(meta.run, action.path, action.attempt)
                self._create_job(obj, action.path, action.attempt, secret_name, jobs[secret_name])
            elif isinstance(action, RunFlow):
                self._create_child(obj, definition, action)
            elif isinstance(action, CancelStep):
                # A step's Job, or an inner flow's child run: whichever exists stops.
                self.kube.delete_job(meta.namespace, names.job_name(meta.run, action.path, action.attempt))
                self.kube.patch_flowrun_spec(meta.namespace, names.child_run_name(meta.run, action.path, action.attempt),
                                             {"cancel": True})

    def _repair(self, obj: dict[str, Any], meta: RunMeta, definition: Definition, repairs: list[Repair]) -> None:
        for repair in repairs:
            if isinstance(repair, RecreateJob):
                self._create_job(obj, repair.path, repair.attempt, repair.secret_name, repair.job)
            elif isinstance(repair, StopJob):
                self.kube.delete_job(meta.namespace, repair.job)
            elif isinstance(repair, RecreateChildArgs):
                self.kube.create(args_secret(repair.child, repair.args))
            else:
                module = module_at(definition.loaded.flow, repair.path, definition.library)
                assert module is not None and isinstance(module.value, PathFlow)
                st = FlowRunStatus.model_validate(obj.get("status") or {}).steps[repair.path]
                action = RunFlow(path=repair.path, attempt=repair.attempt, step_id=module.id,
                                 flow_path=module.value.path, args=st.input or {},
                                 depth=int((obj.get("spec") or {}).get("depth") or 0) + 1, timeout_s=st.timeout_s)
                self._create_child(obj, definition, action)

    def _create_job(self, obj: dict[str, Any], path: str, attempt: int, secret_name: str, job: dict[str, Any]) -> None:
        """Create the attempt's Job; a Job of its name that is not the attempt's is noted on the
        attempt's Secret, which fails the attempt on the next pass."""
        meta = obj["metadata"]
        try:
            problem = self.kube.create_owned(job, f"attempt {path}/{attempt} of run {meta['name']}", meta["uid"], path, attempt)
        except ApiException as exc:
            self._record_refusal(obj, path, attempt, exc, f"the Job of step {path} attempt {attempt}")
            return
        annotation = {ANNOTATION_REFUSED: problem} if problem else {names.ANNOTATION_JOB_CREATED: "true"}
        self.kube.annotate_secret(meta["namespace"], secret_name, annotation)

    def _create_child(self, obj: dict[str, Any], definition: Definition, action: RunFlow) -> None:
        """The child run, then the Secret of its args, owned by it: args never sit in a plain spec."""
        body = _child_run(obj, definition, action)
        try:
            self.kube.create_flowrun(body)
        except ApiException as exc:
            self._record_refusal(obj, action.path, action.attempt, exc,
                                 f"the FlowRun of inner flow {action.path} attempt {action.attempt}")
            return
        child = self.kube.get_flowrun(body["metadata"]["namespace"], body["metadata"]["name"])
        if child is not None:
            self.kube.create(args_secret(child, action.args))

    def _record_refusal(self, obj: dict[str, Any], path: str, attempt: int, exc: ApiException, what: str) -> None:
        """An attempt the status names cannot start: its report says so, as a step's would."""
        refused = refusal(exc, what)
        if refused is None:
            raise exc
        self._write_report(obj, path, attempt, StepReport(ok=False, error=refused).model_dump(mode="json"))

    def _write_report(self, obj: dict[str, Any], path: str, attempt: int, report: Any) -> None:
        """An attempt's report ConfigMap, made by the operator itself (a refusal, a restarted run's copy)."""
        meta = obj["metadata"]
        self.kube.create({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": names.report_name(meta["name"], path, attempt), "namespace": meta["namespace"],
                         "labels": {names.LABEL_RUN: names.label_value(meta["name"]), names.LABEL_KIND: KIND_REPORT},
                         "annotations": {names.ANNOTATION_STEP_PATH: path, names.ANNOTATION_ATTEMPT: str(attempt)},
                         "ownerReferences": [_owner(obj)]},
            "data": {"report": json.dumps(report)},
        })

    def _report_outcome(self, run: dict[str, Any], cm: dict[str, Any], path: str | None = None,
                        attempt: int | None = None) -> StepOutcome:
        """A report's outcome if the report is this run's (and this attempt's): anyone may make a
        ConfigMap. With the real values behind its masks when this process has them."""
        trusted = _trusted_report(cm, run["metadata"]["uid"], path, attempt)
        if trusted.error is not None and trusted.error.name == "ForeignObject":
            return trusted
        try:
            recorded = json.loads(cm["data"]["report"])
        except (KeyError, ValueError):
            return trusted
        real = self.secrecy.restore(run["metadata"]["uid"], cm["metadata"]["name"], recorded, self._secrets)
        return _report_outcome({**cm, "data": {**cm["data"], "report": json.dumps(real)}})

    def _release(self, obj: dict[str, Any], status: FlowRunStatus) -> None:
        """A finished run keeps its Jobs (for logs) but not its shared volume."""
        meta = obj["metadata"]
        self.kube.delete_claim(meta["namespace"], names.shared_claim_name(meta["name"]))
        self._definitions.pop(meta["uid"], None)
        self._runtimes.discard(meta["uid"])
        observe.forget_run(meta["uid"], observe.ATTEMPT_STARTS)
        if self.watched is not None:
            self.watched.forget_run(meta["namespace"], meta["name"])
        for st in status.steps.values():
            if st.result_ref:
                self._large_results.pop(st.result_ref, None)
        self.offload.forget(meta["uid"], status.steps)
        if names.LABEL_PARENT not in (meta.get("labels") or {}):
            # A child run's real values are forgotten once its parent has read its outcome.
            self.secrecy.forget(meta["uid"])


@dataclass
class Reading:
    """What the read phase found: planner events, repairs for the act phase, the error of
    an unreadable resume record, and Events to post that are no state change."""

    events: list[Event]
    repairs: list[Repair] = field(default_factory=list)
    unreadable: ErrorInfo | None = None
    notices: list[observe.Transition] = field(default_factory=list)
    held: set[tuple[str, int]] = field(default_factory=set)


@dataclass(frozen=True)
class RecreateJob:
    """An attempt the status names whose Job was never created."""

    path: str
    attempt: int
    secret_name: str
    job: dict[str, Any]


@dataclass(frozen=True)
class StopJob:
    """A Job that will never get anywhere (its image, its volume), once its failure is recorded."""

    job: str


@dataclass(frozen=True)
class RecreateChildArgs:
    """A child run whose args Secret was never created (the operator stopped in between)."""

    child: dict[str, Any]
    args: dict[str, Any]


@dataclass(frozen=True)
class RecreateChild:
    """An inner flow's attempt the status names whose child FlowRun was never created."""

    path: str
    attempt: int


Repair = RecreateJob | StopJob | RecreateChild | RecreateChildArgs


def _child_outcome(child: dict[str, Any]) -> StepOutcome | None:
    """The outcome of an inner flow's child FlowRun, once it has ended."""
    status = child.get("status") or {}
    if status.get("phase") == "Succeeded":
        return StepOutcome(ok=True, result=status.get("result"))
    if status.get("phase") in ("Failed", "Cancelled"):
        error = status.get("error") or {}
        return StepOutcome(ok=False, error=StepError(
            name=error.get("name") or status["phase"],
            message=f"inner flow run {child['metadata']['name']}: {error.get('message') or status['phase'].lower()}",
            stack=error.get("stack") or ""))
    return None


def _run_trace(obj: dict[str, Any]) -> tuple[RunTrace, str | None]:
    """A run's trace from its annotation, and what is wrong with the annotation (then the run has a trace of its own)."""
    meta = obj["metadata"]
    given = (meta.get("annotations") or {}).get(names.ANNOTATION_TRACEPARENT)
    try:
        return run_trace(meta["uid"], given), None
    except ValueError as exc:
        return run_trace(meta["uid"], None), str(exc)


def _traced_flow(obj: dict[str, Any]) -> str:
    """What a run's spans name as its flow: the Flow it refers to, an inner flow's path, or `(inline)`
    (never the run's own name: span names stay few)."""
    meta, spec = obj["metadata"], obj.get("spec") or {}
    return str((spec.get("flowRef") or {}).get("name")
               or (meta.get("annotations") or {}).get(names.ANNOTATION_FLOW_PATH) or "(inline)")


def _child_run(parent: dict[str, Any], definition: Definition, action: RunFlow) -> dict[str, Any]:
    """The child FlowRun of an inner flow: the pinned flow, inline, owned by its parent."""
    meta = parent["metadata"]
    flow = definition.library.flows[action.flow_path].model_dump(mode="json", by_alias=True, exclude_none=True)
    return {
        "apiVersion": parent["apiVersion"],
        "kind": "FlowRun",
        "metadata": {
            "name": names.child_run_name(meta["name"], action.path, action.attempt),
            "namespace": meta["namespace"],
            "labels": {names.LABEL_PARENT: names.label_value(meta["name"]), names.LABEL_FLOW: names.label_value(action.flow_path)},
            "annotations": {names.ANNOTATION_STEP_PATH: action.path, names.ANNOTATION_ATTEMPT: str(action.attempt),
                            names.ANNOTATION_FLOW_PATH: action.flow_path,
                            # The inner flow's run span hangs under its parent run's span.
                            names.ANNOTATION_TRACEPARENT: _run_trace(parent)[0].traceparent},
            "ownerReferences": [_owner(parent)],
        },
        # The args follow in a Secret owned by the child (argsSecret): they may hold secret values.
        "spec": {"flow": flow, "argsSecret": args_secret_name(names.child_run_name(meta["name"], action.path, action.attempt)),
                 "depth": action.depth, **({"timeoutS": action.timeout_s} if action.timeout_s is not None else {})},
    }


def result_name(run: str) -> str:
    """The ConfigMap holding a run's result when the status cannot."""
    return names.identity_name(run, "result")


def _large(value: Any) -> bool:
    return len(json.dumps(value, default=str)) > RESULT_INLINE_LIMIT


def _changed(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether a status write would change anything but the running duration."""
    volatile = ("duration",)
    return {k: v for k, v in old.items() if k not in volatile} != {k: v for k, v in new.items() if k not in volatile}


def _job_created(secret: dict[str, Any]) -> bool:
    return (secret["metadata"].get("annotations") or {}).get(names.ANNOTATION_JOB_CREATED) == "true"


def _stored_job(secret: dict[str, Any]) -> dict[str, Any] | None:
    """The Job manifest an attempt's Secret keeps (read back base64, as the API gives a Secret's
    data); None in a step Secret of an older millrace, which kept it in a ConfigMap: its attempt
    is judged by its Job, as one whose Job was created."""
    stored = (secret.get("data") or {}).get(JOB_KEY)
    return json.loads(base64.b64decode(stored)) if stored else None


def _owner(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj["metadata"]
    return {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": meta["name"], "uid": meta["uid"],
            "controller": True, "blockOwnerDeletion": True}


def _foreign(message: str) -> StepOutcome:
    return StepOutcome(ok=False, error=StepError(name="ForeignObject", message=message))


def _trusted_report(cm: dict[str, Any], run_uid: str, path: str | None = None, attempt: int | None = None) -> StepOutcome:
    """A report's outcome, if the report is this run's (and this attempt's): anyone may make a ConfigMap."""
    what = f"attempt {path}/{attempt} of the run" if path is not None else "the run"
    return _report_outcome(cm) if names.owned(cm, run_uid, path, attempt) else _foreign(names.foreign("ConfigMap", cm, what))


def _report_outcome(cm: dict[str, Any]) -> StepOutcome:
    try:
        report = StepReport.model_validate_json(cm["data"]["report"])
    except (KeyError, ValueError) as exc:
        return StepOutcome(ok=False, error=StepError(name="ProtocolError", message=f"unreadable step report: {exc}"))
    outcome = report.outcome(logs="", duration_s=0.0)
    if outcome.ok and len(json.dumps(outcome.result, default=str)) > RESULT_MAX:
        return StepOutcome(ok=False, error=StepError(name="ResultTooLarge",
                                                     message=f"the result is larger than {RESULT_MAX // 1024} KiB, the most a run keeps"))
    return outcome
