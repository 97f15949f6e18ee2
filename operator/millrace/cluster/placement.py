"""Which node a run's shared claim is in use on, so its next pods go there."""

from __future__ import annotations

from typing import Any

from . import names
from .kube import KubeApi

# Set by the scheduler on a claim of a WaitForFirstConsumer storage class.
SELECTED_NODE = "volume.kubernetes.io/selected-node"
_TERMINAL = ("Succeeded", "Failed")


def claim_node(kube: KubeApi, namespace: str, run: str) -> str | None:
    """The claim's selected node, else the node of the run's latest pod that
    mounts the claim (a running one first), else None: no pod has run yet."""
    claim = names.shared_claim_name(run)
    found = kube.get_claim(namespace, claim)
    selected = ((found or {}).get("metadata", {}).get("annotations") or {}).get(SELECTED_NODE)
    if selected:
        return selected
    pods = [p for p in kube.list_pods(namespace, f"{names.LABEL_RUN}={names.label_value(run)}")
            if p["spec"].get("nodeName") and _mounts(p, claim)]
    if not pods:
        return None
    latest = max(pods, key=lambda p: ((p.get("status") or {}).get("phase") not in _TERMINAL,
                                      p["metadata"].get("creationTimestamp") or ""))
    return str(latest["spec"]["nodeName"])


def _mounts(pod: dict[str, Any], claim: str) -> bool:
    return any((v.get("persistentVolumeClaim") or {}).get("claimName") == claim for v in pod["spec"].get("volumes") or [])
