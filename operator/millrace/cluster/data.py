"""Variables, resources, scripts and flows a run may use, from the namespace.

Only objects carrying the millrace label are visible to flows: a flow can
never read an arbitrary Secret or ConfigMap of its namespace. A Windmill path
(`f/folder/name`) is kept in the `millrace.dev/path` annotation; the object's
name is that path with its slashes made dashes (`f-folder-name`). A flow step's
inner flow is the Flow object of that name. A Hub path (`hub/<id>/<app>/<name>`)
resolves from the labelled scripts of the chart's catalog namespace, then from the
catalog shipped with millrace (millrace/hub), never from the flow's namespace.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from ..runtime.languages import runtime_language
from ..engine.library import Library, ScriptSource, collect_library
from ..hub import CATALOG_ROOT, is_hub_path
# The shipped catalog is a script folder in the operator's own package: read as the local shell reads one.
from ..local.scripts import script_in
from ..model.flow import OpenFlow, openflow_of
from . import names
from .kube import KubeApi

ANNOTATION_PATH = "millrace.dev/path"
KIND_VARIABLE, KIND_RESOURCE, KIND_SCRIPT = "variable", "resource", "script"
_DATA_MARKERS = ("$var:", "$res:", "variable(", "resource(")


class UnreadableData(ValueError):
    """A labelled object that cannot be what its label says (a Secret holding bytes that are not text)."""


def labelled_objects(kube: KubeApi, namespace: str, kind: str, secrets: bool = True) -> list[tuple[str, dict[str, Any]]]:
    """Every ConfigMap and Secret (unless not `secrets`) labelled with `kind`, as ("ConfigMap"|"Secret", object): Secrets last."""
    selector = f"{names.LABEL_KIND}={kind}"
    sanitize = kube.api_client.sanitize_for_serialization
    found = [("ConfigMap", sanitize(item)) for item in kube.core.list_namespaced_config_map(namespace, label_selector=selector).items]
    if secrets:
        found += [("Secret", sanitize(item)) for item in kube.core.list_namespaced_secret(namespace, label_selector=selector).items]
    return found


def labelled(kube: KubeApi, namespace: str, kind: str, secrets: bool = True) -> dict[str, dict[str, str]]:
    """Path -> data of every Secret and ConfigMap labelled with `kind` (Secrets decoded; a Secret wins)."""
    found: dict[str, dict[str, str]] = {}
    for type_, obj in labelled_objects(kube, namespace, kind, secrets):
        data = obj.get("data") or {}
        found[path_of(obj)] = ({k: _text(obj, k, v) for k, v in data.items()} if type_ == "Secret" else dict(data))
    return found


def _text(obj: dict[str, Any], key: str, value: str) -> str:
    try:
        return base64.b64decode(value).decode("utf-8")
    except UnicodeDecodeError:
        meta = obj["metadata"]
        raise UnreadableData(f"Secret {meta['name']} (labelled {names.LABEL_KIND}={(meta.get('labels') or {}).get(names.LABEL_KIND)}): "
                             f"key '{key}' is binary, not UTF-8 text") from None


def path_of(obj: dict[str, Any]) -> str:
    """The Windmill path of a labelled object: its annotation, or else its name."""
    meta = obj["metadata"]
    return (meta.get("annotations") or {}).get(ANNOTATION_PATH) or meta["name"]


def uses_data(document: Any) -> bool:
    """Whether a flow mentions variables or resources at all (most do not: skip the lookups)."""
    text = json.dumps(document)
    return any(marker in text for marker in _DATA_MARKERS)


def data_mappings(kube: KubeApi, namespace: str) -> tuple[dict[str, str], dict[str, Any]]:
    variables = {path: data.get("value", "") for path, data in labelled(kube, namespace, KIND_VARIABLE).items()}
    resources = {path: json.loads(data.get("value", "null")) for path, data in labelled(kube, namespace, KIND_RESOURCE).items()}
    return variables, resources


def resolve_library(kube: KubeApi, namespace: str, flow: OpenFlow, hub_namespace: str | None = None) -> Library:
    """Scripts (labelled ConfigMaps) and flows (Flow objects) that `flow` references by path."""
    labelled_scripts: dict[str, dict[str, dict[str, str]]] = {}

    def scripts_of(where: str) -> dict[str, dict[str, str]]:
        if where not in labelled_scripts:
            # The catalog namespace is read through ConfigMaps only: the chart grants nothing else there.
            labelled_scripts[where] = labelled(kube, where, KIND_SCRIPT, secrets=where == namespace)
        return labelled_scripts[where]

    def find_script(path: str) -> ScriptSource | None:
        if is_hub_path(path):
            found = _script_source(path, scripts_of(hub_namespace).get(path)) if hub_namespace else None
            return found or script_in(path, [CATALOG_ROOT])
        return _script_source(path, scripts_of(namespace).get(path))

    def find_flow(path: str) -> OpenFlow | None:
        obj = kube.get_flow(namespace, names.path_name(path))
        return OpenFlow.model_validate(openflow_of(obj["spec"])) if obj is not None else None

    return collect_library(flow, find_script, find_flow)


def _script_source(path: str, data: dict[str, str] | None) -> ScriptSource | None:
    language = runtime_language((data or {}).get("language", ""))
    return ScriptSource(path, language, data["content"], data.get("lock")) if data and language and "content" in data else None
