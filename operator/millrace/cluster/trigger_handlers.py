"""kopf handlers for Flow webhooks: the Flow's status shows its URL. Thin: calls millrace.cluster.triggers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import kopf

from ..model.resources import GROUP, VERSION
from .kube import KubeApi
from .triggers import flow_webhook_status

_STATE: dict[str, Any] = {}


def configure(kube: KubeApi, hooks_url: str, sign: Callable[[str], str]) -> None:
    _STATE.update(kube=kube, hooks_url=hooks_url, sign=sign)


@kopf.on.resume(GROUP, VERSION, "flows", field="spec.webhook", value=kopf.PRESENT)
@kopf.on.create(GROUP, VERSION, "flows", field="spec.webhook", value=kopf.PRESENT)
@kopf.on.update(GROUP, VERSION, "flows", field="spec.webhook")
def webhook_changed(body: kopf.Body, namespace: str, name: str, **_: Any) -> None:
    if "kube" not in _STATE:
        return
    flow = dict(body)
    if not (flow.get("spec") or {}).get("webhook"):
        _STATE["kube"].patch_flow_status(namespace, name, {"webhookUrl": None})
        return
    status, secret = flow_webhook_status(flow, _STATE["hooks_url"], _STATE["sign"])
    if secret is not None:
        _STATE["kube"].create(secret)
    _STATE["kube"].patch_flow_status(namespace, name, status)
