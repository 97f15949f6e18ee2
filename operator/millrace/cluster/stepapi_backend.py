"""The step API's backend in a cluster: Kubernetes objects instead of files.

- a report is a ConfigMap owned by the run, created once (a second report
  for the same attempt finds it and is refused): the outcome is durable
  before the step hears back, so an operator restart loses no result;
- variables and resources are Secrets (secret variables) or ConfigMaps
  labelled `millrace.dev/kind: variable|resource`, their Windmill path in the
  `millrace.dev/path` annotation. Nothing unlabelled is ever read;
- a step's state is a ConfigMap labelled `millrace.dev/kind: state`;
- the flow user state is `FlowRun.status.userState`;
- a resume or cancel is a ConfigMap labelled `millrace.dev/kind: resume`,
  applied by the run's reconciler.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

from kubernetes.client.exceptions import ApiException

from ..model.resources import GROUP, VERSION
from ..runtime.protocol import StepReport
from ..runtime.stepapi.backend import Conflict, Forbidden, NotFound
from ..runtime.stepapi.models import Resource, ResumeRequest, Variable
from ..runtime.stepapi.tokens import Claims
from . import names
from .crashpoints import crash_point
from .data import ANNOTATION_PATH, KIND_RESOURCE, KIND_VARIABLE, labelled
from .kube import FLOWRUNS, KubeApi
from .reconcile import KIND_REPORT, KIND_RESUME

KIND_STATE = "state"

Notify = Callable[[str, str], None]


def _split(run: str) -> tuple[str, str]:
    namespace, _, name = run.partition("/")
    return namespace, name


class ClusterBackend:
    def __init__(self, kube: KubeApi, notify: Notify) -> None:
        self.kube = kube
        self.notify = notify

    # --- helpers -------------------------------------------------------------------------

    def _run(self, claims: Claims) -> dict[str, Any]:
        namespace, name = _split(claims.run)
        obj = self.kube.get_flowrun(namespace, name)
        if obj is None:
            raise Forbidden(f"run {claims.run} does not exist any more", run=claims.run)
        return obj

    def _owned_record(self, claims: Claims, name: str, kind: str, data: dict[str, str]) -> None:
        run = self._run(claims)
        meta = run["metadata"]
        body = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": name,
                "namespace": meta["namespace"],
                "labels": {names.LABEL_RUN: names.label_value(meta["name"]), names.LABEL_KIND: kind},
                "ownerReferences": [{"apiVersion": f"{GROUP}/{VERSION}", "kind": "FlowRun", "name": meta["name"],
                                     "uid": meta["uid"], "controller": True, "blockOwnerDeletion": True}],
            },
            "data": data,
        }
        if not self.kube.create(body):
            raise Conflict(f"attempt {claims.key} of run {claims.run} has reported its outcome already",
                           run=claims.run, step=claims.key)
        self.notify(meta["namespace"], meta["name"])

    def _write_labelled(self, namespace: str, kind: str, path: str, data: dict[str, str], secret: bool) -> None:
        body = {
            "metadata": {"name": names.path_name(path), "namespace": namespace,
                         "labels": {names.LABEL_KIND: kind}, "annotations": {ANNOTATION_PATH: path}},
        }
        if secret:
            body.update(apiVersion="v1", kind="Secret", type="Opaque", stringData=data)
            create, replace = self.kube.core.create_namespaced_secret, self.kube.core.replace_namespaced_secret
        else:
            body.update(apiVersion="v1", kind="ConfigMap", data=data)
            create, replace = self.kube.core.create_namespaced_config_map, self.kube.core.replace_namespaced_config_map
        try:
            create(namespace, body)
        except ApiException as exc:
            if exc.status != 409:
                raise
            replace(body["metadata"]["name"], namespace, body)

    # --- Backend -----------------------------------------------------------------------------

    def report(self, claims: Claims, report: StepReport) -> None:
        namespace, name = _split(claims.run)
        self._owned_record(claims, names.report_name(name, claims.path, claims.attempt), KIND_REPORT,
                           {"report": report.model_dump_json()})
        crash_point("after-report")

    def get_state(self, claims: Claims) -> Any:
        namespace, _ = _split(claims.run)
        cm = self.kube.get_config_map(namespace, names.dns_name("state", claims.flow, claims.step_id))
        return json.loads(cm["data"]["state"]) if cm and "state" in (cm.get("data") or {}) else None

    def set_state(self, claims: Claims, value: Any) -> None:
        namespace, _ = _split(claims.run)
        name = names.dns_name("state", claims.flow, claims.step_id)
        body: dict[str, Any] = {
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace,
                         "labels": {names.LABEL_KIND: KIND_STATE, names.LABEL_FLOW: names.label_value(claims.flow)},
                         "annotations": {ANNOTATION_PATH: f"{claims.flow}/{claims.step_id}"}},
            "data": {"state": json.dumps(value)}}
        flow = self.kube.get_flow(namespace, claims.flow)
        if flow is not None:
            # States outlive runs but not their Flow.
            body["metadata"]["ownerReferences"] = [{"apiVersion": f"{GROUP}/{VERSION}", "kind": "Flow",
                                                    "name": claims.flow, "uid": flow["metadata"]["uid"]}]
        if not self.kube.create(body):
            self.kube.core.replace_namespaced_config_map(name, namespace, body)

    def get_variable(self, claims: Claims, path: str) -> str:
        namespace, _ = _split(claims.run)
        found = labelled(self.kube, namespace, KIND_VARIABLE).get(path)
        if found is None or "value" not in found:
            raise NotFound(f"no variable at path '{path}' (a Secret or ConfigMap labelled millrace.dev/kind=variable)", path=path)
        return found["value"]

    def set_variable(self, claims: Claims, path: str, variable: Variable) -> None:
        namespace, _ = _split(claims.run)
        self._write_labelled(namespace, KIND_VARIABLE, path, {"value": variable.value, "description": variable.description},
                             secret=variable.is_secret)

    def get_resource(self, claims: Claims, path: str) -> Any:
        namespace, _ = _split(claims.run)
        found = labelled(self.kube, namespace, KIND_RESOURCE).get(path)
        if found is None or "value" not in found:
            raise NotFound(f"no resource at path '{path}' (a Secret or ConfigMap labelled millrace.dev/kind=resource)", path=path)
        return json.loads(found["value"])

    def set_resource(self, claims: Claims, path: str, resource: Resource) -> None:
        namespace, _ = _split(claims.run)
        self._write_labelled(namespace, KIND_RESOURCE, path,
                             {"value": json.dumps(resource.value), "resource_type": resource.resource_type,
                              "description": resource.description}, secret=True)

    def get_flow_user_state(self, claims: Claims, key: str) -> Any:
        return ((self._run(claims).get("status") or {}).get("userState") or {}).get(key)

    def set_flow_user_state(self, claims: Claims, key: str, value: Any) -> None:
        namespace, name = _split(claims.run)
        self.kube.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, FLOWRUNS, name, {"status": {"userState": {key: value}}})

    def resume(self, claims: Claims, request: ResumeRequest) -> None:
        namespace, name = _split(claims.run)
        # A link's cancel disapproves the suspended step; `millrace cancel` writes a plain cancel.
        record = {"payload": request.payload, "approver": request.approver, "cancel": claims.use == "cancel",
                  "disapprove": claims.use == "cancel"}
        self._owned_record(claims, names.dns_name(name, "resume", uuid.uuid4().hex[:10]), KIND_RESUME,
                           {"request": json.dumps(record)})
