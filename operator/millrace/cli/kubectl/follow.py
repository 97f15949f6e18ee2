"""Follow a FlowRun: its steps shown live as `millrace run` shows a local run's, then its outcome."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from kubernetes import watch
from kubernetes.client.exceptions import ApiException

from ...cluster.kube import FLOWRUNS, KubeApi
from ...local.progress import Progress
from ...model.flow import OpenFlow, openflow_of
from ...model.resources import GROUP, VERSION, FlowRunStatus
from ..outcome import exit_code, report
from .connect import Target
from .errors import PluginError
from .tables import status_of

COMMAND = "kubectl millrace"
NO_FLOW = OpenFlow.model_validate({"value": {"modules": []}})
WATCH_S = 60  # a watch is opened again this often, in case an event was lost


def ended(status: FlowRunStatus) -> bool:
    """Where following stops: the run ended, or waits for an approval (as `millrace run` stops there)."""
    return status.terminal or status.phase == "Suspended"


def watch_run(kube: KubeApi, namespace: str, name: str, seen: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Call `seen` with every new version of the run until it ends or suspends; that version is returned."""
    while True:
        obj = kube.get_flowrun(namespace, name)
        if obj is None:
            raise PluginError(f"flowrun/{name} was deleted in namespace {namespace}")
        seen(obj)
        if ended(status_of(obj)):
            return obj
        stream = watch.Watch().stream(kube.custom.list_namespaced_custom_object, GROUP, VERSION, namespace, FLOWRUNS,
                                      field_selector=f"metadata.name={name}",
                                      resource_version=obj["metadata"]["resourceVersion"], timeout_seconds=WATCH_S)
        try:
            for event in stream:
                if event["type"] == "DELETED":
                    raise PluginError(f"flowrun/{name} was deleted in namespace {namespace}")
                if event["type"] in ("ADDED", "MODIFIED"):
                    seen(event["object"])
                    if ended(status_of(event["object"])):
                        return dict(event["object"])
        except ApiException as exc:
            if exc.status != 410:  # 410: the version watched from is too old; read the run again
                raise


def run_flow(kube: KubeApi, namespace: str, obj: dict[str, Any]) -> tuple[str, OpenFlow | None]:
    """The flow a run runs (its name, and its document if it can be read): for the live table."""
    spec = obj.get("spec") or {}
    if spec.get("flow") is not None:
        return "(inline)", OpenFlow.model_validate(openflow_of(spec["flow"]))
    name = (spec.get("flowRef") or {}).get("name") or "?"
    flow = kube.get_flow(namespace, name)
    return name, OpenFlow.model_validate(openflow_of(flow["spec"])) if flow is not None else None


def full_result(kube: KubeApi, namespace: str, status: FlowRunStatus) -> Any:
    """The run's result, also when it is too large for the status and kept in a ConfigMap."""
    if not status.result_ref:
        return status.result
    cm = kube.get_config_map(namespace, status.result_ref)
    if cm is None:
        raise PluginError(f"the result's ConfigMap {status.result_ref} is gone")
    return json.loads((cm.get("data") or {}).get("report") or "{}").get("result")


def follow(target: Target, obj: dict[str, Any], output: str) -> int:
    """Show the run's steps until it ends or suspends; print its outcome as `millrace run` does."""
    name = obj["metadata"]["name"]
    flow_name, flow = run_flow(target.kube, target.namespace, obj)
    progress = None
    if output == "text":
        # Without the flow's document (its Flow deleted since) only the line-per-change view can be drawn.
        progress = Progress(flow_name, flow) if flow is not None else Progress(flow_name, NO_FLOW, live=False)

    def seen(version: dict[str, Any]) -> None:
        if progress is not None:
            progress.update(name, status_of(version))

    final = status_of(watch_run(target.kube, target.namespace, name, seen))
    final = final.model_copy(update={"result": full_result(target.kube, target.namespace, final)})
    report(output, name, flow_name, final, command=COMMAND)
    return exit_code(final)
