"""The cluster shell: one FlowRun reconciled with the same planner as locally.

Each pass reads the FlowRun and what its steps left behind (Jobs, report
ConfigMaps written by the step API, resume requests), turns that into
planner events, writes the new status with optimistic concurrency (a
conflict means: read again), then creates the Jobs the planner asked for.

Why it is safe to kill the operator at any point: a step's outcome is in its
report ConfigMap before the step API answers; the status names every
attempt before its Job exists; Job and ConfigMap names derive from the
attempt key, so starting an attempt again finds what the first try made.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from ..engine.actions import Action, CancelStep, RunFlow, RunStep
from ..engine.evaluate import Evaluator
from ..engine.events import CancelRequested, Disapproved, Event, Resumed, Start, StepFinished, Tick
from ..engine.library import Library, ScriptSource
from ..engine.planner import PlanContext, plan
from ..errors import FlowError
from ..expressions import Sandbox
from ..engine.paths import module_at
from ..model.flow import OpenFlow, PathFlow, openflow_of
from ..model.loader import LoadedFlow, load_flow_document
from ..model.resources import FlowRunStatus, Runtime
from ..model.run import ErrorInfo, StepState
from ..runtime.protocol import StepError, StepOutcome, StepReport
from ..runtime.stepapi.tokens import Claims, Signer
from . import names, observe
from .crashpoints import crash_point
from .data import data_mappings, resolve_library, uses_data
from .jobs import RunMeta, shared_claim, step_objects
from .kube import Conflict, KubeApi
from .outcomes import job_outcome
from .placement import claim_node
from .status import decorate

KIND_REPORT = "report"
KIND_RESUME = "resume"
KIND_DEFINITION = "definition"
JOB_KEY = "job.json"
RESULT_INLINE_LIMIT = 4096  # bytes of JSON kept in status; larger results stay in their report ConfigMap
RESULT_MAX = 900 * 1024  # a ConfigMap holds at most 1 MiB


@dataclass
class OperatorConfig:
    api_url: str
    signer: Signer
    default_images: dict[str, str] = field(default_factory=dict)
    # How long a step may wait for its shared volume to be bound before it fails.
    claim_timeout_s: float = 120.0
    # Even with no news, a run is looked at again this often.
    resync_s: float = 30.0


@dataclass
class Definition:
    loaded: LoadedFlow
    library: Library
    runtime: Runtime
    uses_data: bool = False


class RunReconciler:
    def __init__(self, kube: KubeApi, config: OperatorConfig, sandbox: Sandbox,
                 clock: Callable[[], float] = time.time) -> None:
        self.kube = kube
        self.config = config
        self.sandbox = sandbox
        self.clock = clock
        self._definitions: dict[str, Definition] = {}
        self._large_results: dict[str, Any] = {}

    def reconcile(self, namespace: str, name: str) -> tuple[bool, float | None]:
        """One pass. Returns (finished, wake_at); retries itself on write conflicts."""
        while True:
            try:
                return self._pass(namespace, name)
            except Conflict:
                continue

    # --- one pass ------------------------------------------------------------------

    def _pass(self, namespace: str, name: str) -> tuple[bool, float | None]:
        obj = self.kube.get_flowrun(namespace, name)
        if obj is None:
            return True, None
        status = FlowRunStatus.model_validate(obj.get("status") or {})
        if status.terminal:
            self._release(obj, status)
            return True, None
        try:
            definition = self._definition(obj)
        except FlowError as exc:
            failed = status.model_copy(update={"phase": "Failed", "finished_at": self.clock(),
                                               "error": ErrorInfo(name="InvalidFlow", message=str(exc))})
            self.kube.replace_flowrun_status(obj, decorate(failed, obj, self.clock()).model_dump(mode="json", by_alias=True, exclude_none=True))
            return True, None
        meta = self._meta(obj, definition)
        events = self._events(obj, status, meta, definition)
        variables, resources = data_mappings(self.kube, namespace) if definition.uses_data else ({}, {})
        ctx = PlanContext(flow_name=definition.loaded.name, flow=definition.loaded.flow,
                          evaluator=Evaluator(self.sandbox, variables, resources), library=definition.library,
                          child_flows=True, depth=int((obj.get("spec") or {}).get("depth") or 0),
                          timeout_s=(obj.get("spec") or {}).get("timeoutS"))
        state = self._hydrate(namespace, status)
        actions: list[Action] = []
        wake_at: float | None = None
        for event in events:
            result = plan(ctx, state, event)
            state, wake_at = result.state, result.wake_at
            actions.extend(result.actions)
        jobs = self._prepare(meta, actions)
        new_status = decorate(self._dehydrate(state, meta.run), obj, self.clock())
        document = new_status.model_dump(mode="json", by_alias=True, exclude_none=True)
        if actions or _changed(obj.get("status") or {}, document):
            self.kube.replace_flowrun_status(obj, document)
        crash_point("after-status")
        self._launch(obj, meta, definition, actions, jobs)
        observe.record(self.kube, obj, observe.transitions(status, new_status), self.clock())
        if new_status.terminal:
            self._release(obj, new_status)
            return True, None
        return False, wake_at

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
            library = resolve_library(self.kube, meta["namespace"], flow)
            document["scripts"] = {p: {"language": s.language, "content": s.content} for p, s in library.scripts.items()}
            document["flows"] = {p: f.model_dump(mode="json", by_alias=True, exclude_none=True) for p, f in library.flows.items()}
            body = {
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
        document = json.loads(stored["data"]["definition"])
        runtime = Runtime.model_validate(document["spec"].get("runtime") or {})
        loaded = load_flow_document(openflow_of(document["spec"]), document["name"])
        library = Library(
            scripts={p: ScriptSource(p, s["language"], s["content"]) for p, s in document.get("scripts", {}).items()},
            flows={p: OpenFlow.model_validate(f) for p, f in document.get("flows", {}).items()},
        )
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
        )

    # --- events ------------------------------------------------------------------------

    def _events(self, obj: dict[str, Any], status: FlowRunStatus, meta: RunMeta, definition: Definition) -> list[Event]:
        now = self.clock()
        if status.phase == "Pending":
            spec = obj.get("spec") or {}
            return [Start(args=spec.get("args") or {}, now=now, preprocess=bool(spec.get("preprocess")))]
        events: list[Event] = []
        selector = f"{names.LABEL_RUN}={names.label_value(meta.run)}"
        records = {cm["metadata"]["name"]: cm for cm in self.kube.list_config_maps(
            meta.namespace, f"{selector},{names.LABEL_KIND} in ({KIND_REPORT},{KIND_RESUME})")}
        jobs: dict[str, dict[str, Any]] | None = None
        for path, st in status.steps.items():
            if st.phase == "Running" and st.type == "flow" and st.attempts:
                outcome = self._child_outcome(obj, meta, definition, path, st)
                if outcome is not None:
                    events.append(StepFinished(path=path, attempt=st.attempts, outcome=outcome, now=now))
                continue
            if st.phase != "Running" or not st.runs_script or st.not_before is not None:
                continue
            report = records.get(names.report_name(meta.run, path, st.attempts))
            if report is not None:
                events.append(StepFinished(path=path, attempt=st.attempts, outcome=_report_outcome(report), now=now))
                continue
            if jobs is None:
                jobs = {j["metadata"]["name"]: j for j in self.kube.list_jobs(meta.namespace, selector)}
            job = jobs.get(names.job_name(meta.run, path, st.attempts))
            if job is None:
                config_name = names.step_config_name(meta.run, path, st.attempts)
                config_map = self.kube.get_config_map(meta.namespace, config_name)
                if config_map is not None and not _job_created(config_map):
                    # The operator stopped between naming the attempt and creating its Job.
                    self._create_job(meta.namespace, config_name, json.loads(config_map["data"][JOB_KEY]))
                    continue
            outcome = job_outcome(self.kube, meta.namespace, job, now, self.config.claim_timeout_s)
            if outcome is not None:
                # The step may have reported after the records were listed, then ended:
                # its report, read again now, says more than its Job.
                late = self.kube.get_config_map(meta.namespace, names.report_name(meta.run, path, st.attempts))
                outcome = _report_outcome(late) if late is not None else outcome
                events.append(StepFinished(path=path, attempt=st.attempts, outcome=outcome, now=now))
        events.extend(self._resumes(records, status, now))
        if (obj.get("spec") or {}).get("cancel"):
            events.append(CancelRequested(reason="spec.cancel is true", by="kubernetes", now=now))
        return events or [Tick(now=now)]

    def _resumes(self, records: dict[str, dict[str, Any]], status: FlowRunStatus, now: float) -> list[Event]:
        pending = sorted(
            (cm for cm in records.values()
             if cm["metadata"].get("labels", {}).get(names.LABEL_KIND) == KIND_RESUME
             and cm["metadata"]["name"] not in status.applied_resumes),
            key=lambda cm: cm["metadata"].get("creationTimestamp") or "",
        )
        events: list[Event] = []
        for cm in pending:
            request = json.loads(cm["data"]["request"])
            status.applied_resumes.append(cm["metadata"]["name"])
            if request.get("disapprove"):
                # A resume link's cancel URL disapproves the suspended step: the run fails, it is not cancelled.
                events.append(Disapproved(approver=request.get("approver") or "anonymous", now=now))
            elif request.get("cancel"):
                events.append(CancelRequested(reason=request.get("reason") or "cancelled", by=request.get("approver") or "anonymous", now=now))
            else:
                events.append(Resumed(payload=request.get("payload"), approver=request.get("approver") or "anonymous", now=now))
        return events

    # --- large results -------------------------------------------------------------------

    def _hydrate(self, namespace: str, status: FlowRunStatus) -> FlowRunStatus:
        """Bring results kept in report ConfigMaps back, for expressions to read.

        A recorded result never changes: each is read once per operator process."""
        for st in status.steps.values():
            if st.result_ref:
                if st.result_ref not in self._large_results:
                    cm = self.kube.get_config_map(namespace, st.result_ref)
                    if cm is None:
                        continue
                    self._large_results[st.result_ref] = _report_outcome(cm).result
                st.result = self._large_results[st.result_ref]
        return status

    def _dehydrate(self, status: FlowRunStatus, run: str) -> FlowRunStatus:
        out = status.model_copy(deep=True)
        for path, st in out.steps.items():
            if st.phase == "Succeeded" and st.runs_script and st.result is not None:
                if len(json.dumps(st.result, default=str)) > RESULT_INLINE_LIMIT:
                    st.result_ref = st.result_ref or names.report_name(run, path, st.attempts)
                    st.result = None
        if out.result is not None and len(json.dumps(out.result, default=str)) > RESULT_INLINE_LIMIT:
            out.result = {"truncated": True, "note": "the result is larger than the status keeps; see resultRef of the last step"}
        return out

    # --- actions --------------------------------------------------------------------------

    def _prepare(self, meta: RunMeta, actions: list[Action]) -> dict[str, dict[str, Any]]:
        """Before the status names a new attempt: its ConfigMap (which also keeps
        its Job manifest, for recovery) and its Secret. Both are idempotent.
        Returns the Job manifests by ConfigMap name."""
        jobs: dict[str, dict[str, Any]] = {}
        if meta.same_worker and any(isinstance(a, RunStep) for a in actions):
            meta = replace(meta, node=claim_node(self.kube, meta.namespace, meta.run))
        for action in actions:
            if isinstance(action, RunStep):
                if meta.same_worker:
                    self.kube.create(shared_claim(meta))
                token = self.config.signer.issue(Claims(run=f"{meta.namespace}/{meta.run}", flow=meta.flow,
                                                        path=action.path, step_id=action.step_id, attempt=action.attempt))
                config_map, secret, job = step_objects(meta, action, token)
                config_map["data"][JOB_KEY] = json.dumps(job)
                self.kube.create(config_map)
                self.kube.create(secret)
                jobs[config_map["metadata"]["name"]] = job
        return jobs

    def _launch(self, obj: dict[str, Any], meta: RunMeta, definition: Definition, actions: list[Action],
                jobs: dict[str, dict[str, Any]]) -> None:
        for action in actions:
            if isinstance(action, RunStep):
                config_name = names.step_config_name(meta.run, action.path, action.attempt)
                self._create_job(meta.namespace, config_name, jobs[config_name])
            elif isinstance(action, RunFlow):
                self.kube.create_flowrun(_child_run(obj, definition, action))
            elif isinstance(action, CancelStep):
                # A step's Job, or an inner flow's child run: whichever exists stops.
                self.kube.delete_job(meta.namespace, names.job_name(meta.run, action.path, action.attempt))
                self.kube.patch_flowrun_spec(meta.namespace, names.child_run_name(meta.run, action.path, action.attempt),
                                             {"cancel": True})

    def _child_outcome(self, obj: dict[str, Any], meta: RunMeta, definition: Definition, path: str,
                       st: StepState) -> StepOutcome | None:
        """The outcome of an inner flow's child FlowRun, once it has ended."""
        child = self.kube.get_flowrun(meta.namespace, names.child_run_name(meta.run, path, st.attempts))
        if child is None:
            # The operator stopped between naming the child run and creating it.
            module = module_at(definition.loaded.flow, path, definition.library)
            assert module is not None and isinstance(module.value, PathFlow)
            action = RunFlow(path=path, attempt=st.attempts, step_id=module.id, flow_path=module.value.path,
                             args=st.input or {}, depth=int((obj.get("spec") or {}).get("depth") or 0) + 1,
                             timeout_s=st.timeout_s)
            self.kube.create_flowrun(_child_run(obj, definition, action))
            return None
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

    def _create_job(self, namespace: str, config_name: str, job: dict[str, Any]) -> None:
        self.kube.create(job)
        self.kube.annotate_config_map(namespace, config_name, {names.ANNOTATION_JOB_CREATED: "true"})

    def _release(self, obj: dict[str, Any], status: FlowRunStatus) -> None:
        """A finished run keeps its Jobs (for logs) but not its shared volume."""
        meta = obj["metadata"]
        self.kube.delete_claim(meta["namespace"], names.shared_claim_name(meta["name"]))
        self._definitions.pop(meta["uid"], None)


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
            "annotations": {names.ANNOTATION_STEP_PATH: action.path, names.ANNOTATION_FLOW_PATH: action.flow_path},
            "ownerReferences": [_owner(parent)],
        },
        "spec": {"flow": flow, "args": action.args, "depth": action.depth,
                 **({"timeoutS": action.timeout_s} if action.timeout_s is not None else {})},
    }


def _changed(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether a status write would change anything but the running duration."""
    volatile = ("duration",)
    return {k: v for k, v in old.items() if k not in volatile} != {k: v for k, v in new.items() if k not in volatile}


def _job_created(config_map: dict[str, Any]) -> bool:
    return (config_map["metadata"].get("annotations") or {}).get(names.ANNOTATION_JOB_CREATED) == "true"


def _owner(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj["metadata"]
    return {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": meta["name"], "uid": meta["uid"],
            "controller": True, "blockOwnerDeletion": True}


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
