"""Resume or cancel a FlowRun in a cluster, as `millrace resume -n NS RUN` does.

The request is a ConfigMap owned by the run (`millrace.dev/kind: resume`),
the same record a signed resume URL creates; the run's reconciler applies
each one once, in order.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from ..errors import FlowError
from . import names
from .kube import KubeApi
from .reconcile import KIND_RESUME


def request_resume(kube: KubeApi, namespace: str, run: str, *, payload: Any, approver: str,
                   cancel: bool = False, reason: str = "", disapprove: bool = False) -> str:
    obj = kube.get_flowrun(namespace, run)
    if obj is None:
        raise FlowError.single(run, f"no FlowRun '{run}' in namespace '{namespace}'")
    phase = (obj.get("status") or {}).get("phase", "Pending")
    if phase in ("Succeeded", "Failed", "Cancelled"):
        raise FlowError.single(run, f"run '{run}' already ended ({phase.lower()})")
    if not cancel and phase != "Suspended":
        raise FlowError.single(run, f"run '{run}' is not suspended ({phase.lower()})")
    record = resume_record(obj, payload=payload, approver=approver, cancel=cancel, reason=reason, disapprove=disapprove)
    kube.create(record)
    return str(record["metadata"]["name"])


def resume_record(obj: dict[str, Any], *, payload: Any, approver: str, cancel: bool = False, reason: str = "",
                  disapprove: bool = False) -> dict[str, Any]:
    """The request ConfigMap for the FlowRun `obj`, owned by it."""
    meta = obj["metadata"]
    run, namespace = meta["name"], meta["namespace"]
    # A disapproval is a cancel of the suspended step only, as a resume link's cancel URL is.
    record = {"payload": payload, "approver": approver, "cancel": cancel or disapprove, "reason": reason,
              "disapprove": disapprove}
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": names.identity_name(run, "resume", uuid.uuid4().hex), "namespace": namespace,
                     "labels": {names.LABEL_RUN: names.label_value(run), names.LABEL_KIND: KIND_RESUME},
                     "ownerReferences": [{"apiVersion": obj["apiVersion"], "kind": "FlowRun", "name": run,
                                          "uid": meta["uid"], "controller": True, "blockOwnerDeletion": True}]},
        "data": {"request": json.dumps(record)},
    }
