"""Variables, resources, scripts and flows a run may use, from the namespace.

Only objects carrying the millrace label are visible to flows: a flow can
never read an arbitrary Secret or ConfigMap of its namespace. A Windmill path
(`f/folder/name`) is kept in the `millrace.dev/path` annotation; the object's
name is that path with its slashes made dashes (`f-folder-name`). A flow step's
inner flow is the Flow object of that name.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from ..runtime.languages import runtime_language
from ..engine.library import Library, ScriptSource, collect_library
from ..model.flow import OpenFlow, openflow_of
from . import names
from .kube import KubeApi

ANNOTATION_PATH = "millrace.dev/path"
KIND_VARIABLE, KIND_RESOURCE, KIND_SCRIPT = "variable", "resource", "script"
_DATA_MARKERS = ("$var:", "$res:", "variable(", "resource(")


def labelled(kube: KubeApi, namespace: str, kind: str) -> dict[str, dict[str, str]]:
    """Path -> data of every Secret and ConfigMap labelled with `kind` (Secrets decoded)."""
    selector = f"{names.LABEL_KIND}={kind}"
    found: dict[str, dict[str, str]] = {}
    for item in kube.core.list_namespaced_config_map(namespace, label_selector=selector).items:
        found[_path(item)] = dict(item.data or {})
    for item in kube.core.list_namespaced_secret(namespace, label_selector=selector).items:
        found[_path(item)] = {k: base64.b64decode(v).decode("utf-8") for k, v in (item.data or {}).items()}
    return found


def _path(item: Any) -> str:
    return (item.metadata.annotations or {}).get(ANNOTATION_PATH) or item.metadata.name


def uses_data(document: Any) -> bool:
    """Whether a flow mentions variables or resources at all (most do not: skip the lookups)."""
    text = json.dumps(document)
    return any(marker in text for marker in _DATA_MARKERS)


def data_mappings(kube: KubeApi, namespace: str) -> tuple[dict[str, str], dict[str, Any]]:
    variables = {path: data.get("value", "") for path, data in labelled(kube, namespace, KIND_VARIABLE).items()}
    resources = {path: json.loads(data.get("value", "null")) for path, data in labelled(kube, namespace, KIND_RESOURCE).items()}
    return variables, resources


def resolve_library(kube: KubeApi, namespace: str, flow: OpenFlow) -> Library:
    """Scripts (labelled ConfigMaps) and flows (Flow objects) that `flow` references by path."""
    scripts: dict[str, dict[str, str]] = {}

    def find_script(path: str) -> ScriptSource | None:
        if not scripts:
            scripts.update(labelled(kube, namespace, KIND_SCRIPT))
        data = scripts.get(path) or {}
        language = runtime_language(data.get("language", ""))
        return ScriptSource(path, language, data["content"]) if language and "content" in data else None

    def find_flow(path: str) -> OpenFlow | None:
        obj = kube.get_flow(namespace, names.path_name(path))
        return OpenFlow.model_validate(openflow_of(obj["spec"])) if obj is not None else None

    return collect_library(flow, find_script, find_flow)
