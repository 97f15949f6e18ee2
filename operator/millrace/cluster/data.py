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


class UnreadableData(ValueError):
    """A labelled object that cannot be what its label says (a Secret holding bytes that are not text)."""


def labelled_objects(kube: KubeApi, namespace: str, kind: str) -> list[tuple[str, dict[str, Any]]]:
    """Every ConfigMap and Secret labelled with `kind`, as ("ConfigMap"|"Secret", object): Secrets last."""
    selector = f"{names.LABEL_KIND}={kind}"
    sanitize = kube.api_client.sanitize_for_serialization
    return ([("ConfigMap", sanitize(item)) for item in kube.core.list_namespaced_config_map(namespace, label_selector=selector).items]
            + [("Secret", sanitize(item)) for item in kube.core.list_namespaced_secret(namespace, label_selector=selector).items])


def labelled(kube: KubeApi, namespace: str, kind: str) -> dict[str, dict[str, str]]:
    """Path -> data of every Secret and ConfigMap labelled with `kind` (Secrets decoded; a Secret wins)."""
    found: dict[str, dict[str, str]] = {}
    for type_, obj in labelled_objects(kube, namespace, kind):
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


def resolve_library(kube: KubeApi, namespace: str, flow: OpenFlow) -> Library:
    """Scripts (labelled ConfigMaps) and flows (Flow objects) that `flow` references by path."""
    scripts: dict[str, dict[str, str]] = {}

    def find_script(path: str) -> ScriptSource | None:
        if not scripts:
            scripts.update(labelled(kube, namespace, KIND_SCRIPT))
        data = scripts.get(path) or {}
        language = runtime_language(data.get("language", ""))
        return ScriptSource(path, language, data["content"], data.get("lock")) if language and "content" in data else None

    def find_flow(path: str) -> OpenFlow | None:
        obj = kube.get_flow(namespace, names.path_name(path))
        return OpenFlow.model_validate(openflow_of(obj["spec"])) if obj is not None else None

    return collect_library(flow, find_script, find_flow)
