"""The step API's backend in a cluster: Kubernetes objects instead of files.

- every step call is checked against the run: the token's run must still
  exist with the token's uid, and its status must say the token's attempt is
  running, so a token is worth nothing once its attempt has ended;
- a report is a ConfigMap owned by the run and annotated with its attempt,
  with the end of the step's log beside it (steplogs.py), created once (a second report for the same attempt finds it and is
  refused): the outcome is durable before the step hears back, so an
  operator restart loses no result;
- variables and resources are Secrets (secret variables) or ConfigMaps
  labelled `millrace.dev/kind: variable|resource`, their Windmill path in the
  `millrace.dev/path` annotation. Nothing unlabelled is ever read or written:
  a step replaces only the labelled object of its path, and creates a new
  one, labelled, under a name hashed from kind and path;
- a step's state is a ConfigMap labelled `millrace.dev/kind: state`;
- the flow user state is `FlowRun.status.userState`;
- a resume or cancel is a ConfigMap labelled `millrace.dev/kind: resume`,
  named after its link (so a link used twice makes one record), applied by
  the run's reconciler.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from typing import Any, cast

from kubernetes.client.exceptions import ApiException

from ..model.resources import GROUP, VERSION, FlowRunStatus
from ..runtime.datapaths import DataPathError, checked
from ..runtime.protocol import StepReport
from ..runtime.redact import redact
from ..runtime.stepapi.backend import Conflict, Forbidden, Gone, NotFound, Refusal
from ..runtime.stepapi.links import APPLY, WAIT, link_state
from ..runtime.stepapi.models import Resource, ResumeRequest, Variable
from ..runtime.stepapi.tokens import Claims
from . import names, steplogs
from .crashpoints import crash_point
from .data import ANNOTATION_PATH, KIND_RESOURCE, KIND_VARIABLE, labelled, labelled_objects, path_of
from .kube import FLOWRUNS, KubeApi
from .reconcile import KIND_REPORT, KIND_RESUME
from .secrecy import Secrecy
from .watched import Watched

KIND_STATE = "state"

Notify = Callable[[str, str], None]


def _issued_for(claims: Claims, run: dict[str, Any]) -> bool:
    return claims.run_uid is None or run["metadata"]["uid"] == claims.run_uid


def _attempt_running(claims: Claims, run: dict[str, Any]) -> bool:
    status = run.get("status") or {}
    step = (status.get("steps") or {}).get(claims.path) or {}
    return (status.get("phase") in ("Running", "Suspended") and step.get("phase") == "Running"
            and step.get("attempts") == claims.attempt and step.get("notBefore") is None)


def _split(run: str) -> tuple[str, str]:
    namespace, _, name = run.partition("/")
    return namespace, name


def _path(path: str) -> str:
    try:
        return checked(path)
    except DataPathError as problem:
        raise Refusal(str(problem), path=path) from None


class ClusterBackend:
    def __init__(self, kube: KubeApi, notify: Notify, secrecy: Secrecy | None = None,
                 watched: Watched | None = None) -> None:
        self.kube = kube
        self.notify = notify
        self.secrecy = secrecy or Secrecy(kube)
        self.watched = watched

    # --- helpers -------------------------------------------------------------------------

    def _run(self, claims: Claims, refusal: type[Refusal] = Forbidden,
             usable: Callable[[dict[str, Any]], bool] = lambda _: True) -> dict[str, Any]:
        """The token's run: it must exist and be the very run the token was issued for. As the
        watch shows it when that is `usable` (the operator's own status writes are in it at
        once), else as the apiserver has it now."""
        namespace, name = _split(claims.run)
        seen = self.watched.run(namespace, name) if self.watched is not None else None
        if seen is not None and _issued_for(claims, seen) and usable(seen):
            return seen
        obj = self.kube.get_flowrun(namespace, name)
        if obj is None or not _issued_for(claims, obj):
            raise refusal(f"run {claims.run} does not exist any more", run=claims.run)
        return obj

    def authorize(self, claims: Claims) -> None:
        if not _attempt_running(claims, self._run(claims, usable=lambda run: _attempt_running(claims, run))):
            raise Forbidden(f"attempt {claims.key} of run {claims.run} is not running: its token is void",
                            run=claims.run, step=claims.key)

    def _owned_record(self, claims: Claims, run: dict[str, Any], name: str, kind: str,
                      data: dict[str, str]) -> bool:
        """Create a record owned by the run for the claims' attempt; False if this attempt's record exists."""
        meta = run["metadata"]
        body = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": name,
                "namespace": meta["namespace"],
                "labels": {names.LABEL_RUN: names.label_value(meta["name"]), names.LABEL_KIND: kind},
                "annotations": {names.ANNOTATION_STEP_PATH: claims.path, names.ANNOTATION_ATTEMPT: str(claims.attempt)},
                "ownerReferences": [{"apiVersion": f"{GROUP}/{VERSION}", "kind": "FlowRun", "name": meta["name"],
                                     "uid": meta["uid"], "controller": True, "blockOwnerDeletion": True}],
            },
            "data": data,
        }
        created = False
        if self.watched is not None:
            self.watched.coming(body)  # its watch event is no news: the run is told below
        try:
            created = self.kube.create(body)
        finally:
            if self.watched is not None:
                self.watched.made(body, created)  # the run's next pass sees it without waiting for the watch
        if created:
            self.notify(meta["namespace"], meta["name"])
            return True
        existing = self.kube.get_config_map(meta["namespace"], name)
        if existing is not None and not names.owned(existing, meta["uid"], claims.path, claims.attempt):
            raise Conflict(names.foreign("ConfigMap", existing, f"attempt {claims.key} of run {claims.run}"),
                           run=claims.run, step=claims.key)
        return False

    def _find(self, namespace: str, kind: str, path: str) -> tuple[str, dict[str, Any]] | None:
        """The labelled object of `kind` for `path` that steps read (a Secret before a ConfigMap)."""
        found = [entry for entry in labelled_objects(self.kube, namespace, kind) if path_of(entry[1]) == path]
        return found[-1] if found else None

    def _write_labelled(self, namespace: str, kind: str, path: str, data: dict[str, str], secret: bool) -> None:
        """Replace the labelled object of `kind` at `path`, or create one; never touch anything else."""
        found = self._find(namespace, kind, path)
        if found is not None:
            type_, obj = found
            if secret and type_ == "ConfigMap":
                raise Conflict(f"the {kind} at path '{path}' is the ConfigMap {obj['metadata']['name']}, which is not "
                               "secret: a secret value is never written to a ConfigMap", path=path)
            self._replace(namespace, type_, obj, data)
            self._written_secret(namespace, kind, obj["metadata"]["name"], data, secret)
            return
        body: dict[str, Any] = {
            "metadata": {"name": names.data_name(kind, path), "namespace": namespace,
                         "labels": {names.LABEL_KIND: kind}, "annotations": {ANNOTATION_PATH: path}},
        }
        if secret:
            body.update(apiVersion="v1", kind="Secret", type="Opaque", stringData=data)
        else:
            body.update(apiVersion="v1", kind="ConfigMap", data=data)
        if not self.kube.create(body):
            raise Conflict(f"{body['kind']} {namespace}/{body['metadata']['name']} exists but is not the {kind} "
                           f"of path '{path}': it is left alone", path=path)
        self._written_secret(namespace, kind, body["metadata"]["name"], data, secret)

    def _written_secret(self, namespace: str, kind: str, name: str, data: dict[str, str], secret: bool) -> None:
        """A secret variable's new value is masked in the records written after it (secrecy.py)."""
        if secret and kind == KIND_VARIABLE and data.get("value"):
            self.secrecy.written(namespace, name, data["value"])

    def _replace(self, namespace: str, type_: str, obj: dict[str, Any], data: dict[str, str]) -> None:
        """New data in an object found by its labels: its name, labels and owners stay as they are."""
        name = obj["metadata"]["name"]
        try:
            # Typed `Any`: the client serialises a plain dict as it does its model objects, though it types only the models.
            body: Any
            if type_ == "Secret":
                encoded = {k: base64.b64encode(v.encode("utf-8")).decode("ascii") for k, v in data.items()}
                body = {**obj, "data": {**(obj.get("data") or {}), **encoded}}
                self.kube.core.replace_namespaced_secret(name, namespace, body)
            else:
                body = {**obj, "data": {**(obj.get("data") or {}), **data}}
                self.kube.core.replace_namespaced_config_map(name, namespace, body)
        except ApiException as exc:
            if exc.status == 409:
                raise Conflict(f"{type_} {namespace}/{name} changed while it was written: try again") from None
            raise

    # --- Backend -----------------------------------------------------------------------------

    def report(self, claims: Claims, report: StepReport, pod: str | None = None) -> None:
        namespace, name = _split(claims.run)
        run = self._run(claims)
        record = names.report_name(name, claims.path, claims.attempt)
        secrets = self.secrecy.secrets(namespace)
        # Masked as the local shell masks its run records; the run goes on with the real outcome.
        document = self.secrecy.record(run["metadata"]["uid"], record, report.model_dump(mode="json"), secrets)
        data = {"report": json.dumps(document)}
        # The end of the step's log, for after its pod is gone (steplogs.py), masked the same way.
        tail = steplogs.log_tail(self.kube, namespace, names.job_name(name, claims.path, claims.attempt), pod)
        kept = steplogs.beside(redact(tail, secrets), data["report"]) if tail else ""
        if kept:
            data[steplogs.LOG_KEY] = kept
        if not self._owned_record(claims, run, record, KIND_REPORT, data):
            raise Conflict(f"attempt {claims.key} of run {claims.run} has reported its outcome already",
                           run=claims.run, step=claims.key)
        crash_point("after-report")

    def _state(self, claims: Claims) -> tuple[str, str, dict[str, Any] | None]:
        """Namespace, name and object of the step's state; Conflict if that name holds anything else."""
        namespace, _ = _split(claims.run)
        name = names.state_name(claims.flow, claims.step_id, claims.state_scope)
        cm = self.kube.get_config_map(namespace, name)
        if cm is not None:
            meta = cm["metadata"]
            if ((meta.get("labels") or {}).get(names.LABEL_KIND) != KIND_STATE
                    or (meta.get("annotations") or {}).get(ANNOTATION_PATH) != claims.state_path):
                raise Conflict(f"ConfigMap {namespace}/{name} exists but is not the state of step {claims.step_id} "
                               f"of flow {claims.flow}: it is left alone", step=claims.step_id)
        return namespace, name, cm

    def get_state(self, claims: Claims) -> Any:
        _, _, cm = self._state(claims)
        return json.loads(cm["data"]["state"]) if cm and "state" in (cm.get("data") or {}) else None

    def set_state(self, claims: Claims, value: Any) -> None:
        namespace, name, cm = self._state(claims)
        if cm is not None:
            self._replace(namespace, "ConfigMap", cm, {"state": json.dumps(value)})
            return
        body: dict[str, Any] = {
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace,
                         "labels": {names.LABEL_KIND: KIND_STATE, names.LABEL_FLOW: names.label_value(claims.flow)},
                         "annotations": {ANNOTATION_PATH: claims.state_path}},
            "data": {"state": json.dumps(value)}}
        flow = self.kube.get_flow(namespace, claims.flow)
        if flow is not None:
            # States outlive runs but not their Flow.
            body["metadata"]["ownerReferences"] = [{"apiVersion": f"{GROUP}/{VERSION}", "kind": "Flow",
                                                    "name": claims.flow, "uid": flow["metadata"]["uid"]}]
        if not self.kube.create(body):
            raise Conflict(f"the state of step {claims.step_id} of flow {claims.flow} was written meanwhile: try again",
                           step=claims.step_id)

    def get_variable(self, claims: Claims, path: str) -> str:
        namespace, _ = _split(claims.run)
        found = labelled(self.kube, namespace, KIND_VARIABLE).get(_path(path))
        if found is None or "value" not in found:
            raise NotFound(f"no variable at path '{path}' (a Secret or ConfigMap labelled millrace.dev/kind=variable)", path=path)
        return found["value"]

    def set_variable(self, claims: Claims, path: str, variable: Variable) -> None:
        namespace, _ = _split(claims.run)
        self._write_labelled(namespace, KIND_VARIABLE, _path(path),
                             {"value": variable.value, "description": variable.description}, secret=variable.is_secret)

    def get_resource(self, claims: Claims, path: str) -> Any:
        namespace, _ = _split(claims.run)
        found = labelled(self.kube, namespace, KIND_RESOURCE).get(_path(path))
        if found is None or "value" not in found:
            raise NotFound(f"no resource at path '{path}' (a Secret or ConfigMap labelled millrace.dev/kind=resource)", path=path)
        return json.loads(found["value"])

    def set_resource(self, claims: Claims, path: str, resource: Resource) -> None:
        namespace, _ = _split(claims.run)
        self._write_labelled(namespace, KIND_RESOURCE, _path(path),
                             {"value": json.dumps(resource.value), "resource_type": resource.resource_type,
                              "description": resource.description}, secret=True)

    def get_flow_user_state(self, claims: Claims, key: str) -> Any:
        return ((self._run(claims).get("status") or {}).get("userState") or {}).get(key)

    def set_flow_user_state(self, claims: Claims, key: str, value: Any) -> None:
        namespace, name = _split(claims.run)
        patched = self.kube.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, FLOWRUNS, name, {"status": {"userState": {key: value}}})
        if self.watched is not None:
            self.watched.put_run(cast(dict[str, Any], patched))  # a read of the state right after sees it

    def check_link(self, claims: Claims) -> None:
        self._linked_run(claims)

    def _linked_run(self, claims: Claims) -> dict[str, Any]:
        def state_of(run: dict[str, Any]) -> str:
            return link_state(claims.path, claims.attempt, FlowRunStatus.model_validate(run.get("status") or {}))

        run = self._run(claims, refusal=Gone, usable=lambda seen: state_of(seen) in (WAIT, APPLY))
        state = state_of(run)
        if state not in (WAIT, APPLY):
            raise Gone(state, run=claims.run, step=claims.path)
        return run

    def resume(self, claims: Claims, request: ResumeRequest) -> None:
        run = self._linked_run(claims)
        name = run["metadata"]["name"]
        # A link's cancel disapproves the suspended step; `millrace cancel` writes a plain cancel.
        record = {"payload": request.payload, "approver": request.approver, "cancel": claims.use == "cancel",
                  "disapprove": claims.use == "cancel", "path": claims.path, "attempt": claims.attempt}
        # Named after the link: a link used again finds its record, and counts once.
        self._owned_record(claims, run, names.identity_name(name, "resume", claims.link or uuid.uuid4().hex),
                           KIND_RESUME, {"request": json.dumps(record)})
