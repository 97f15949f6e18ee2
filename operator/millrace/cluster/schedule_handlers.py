"""kopf handlers for Flow schedules. Thin: each calls millrace.cluster.schedules.

A timer looks at every scheduled Flow each second and does a pass only
when the next fire time has come (the Flow body comes from kopf's watch,
so waiting costs no request); a scheduled run that ends triggers a pass
at once, so its outcome shows on the Flow, history is pruned and a run a
`Forbid` policy held back starts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import kopf

from ..model.resources import GROUP, VERSION
from ..model.run import TERMINAL_RUN_PHASES
from ..schedule.cron import CronError
from . import names
from .kube import KubeApi
from .schedules import due_soon, reconcile_schedule

LOG = logging.getLogger("millrace.schedules")
_STATE: dict[str, Any] = {"clock": time.time}


def configure(kube: KubeApi, clock: Callable[[], float] = time.time) -> None:
    _STATE["kube"], _STATE["clock"] = kube, clock


@kopf.timer(GROUP, VERSION, "flows", interval=1.0, field="spec.schedule", value=kopf.PRESENT)
def schedule_tick(body: kopf.Body, **_: Any) -> None:
    if due_soon(dict(body), _STATE["clock"]()):
        _pass(dict(body))


@kopf.on.event(GROUP, VERSION, "flowruns", labels={names.LABEL_SCHEDULED: "true"})
def scheduled_run_event(body: kopf.Body, namespace: str, **_: Any) -> None:
    if (body.get("status") or {}).get("phase") not in TERMINAL_RUN_PHASES:
        return
    for owner in body.get("metadata", {}).get("ownerReferences") or []:
        if owner.get("kind") == "Flow":
            flow = _STATE["kube"].get_flow(namespace, owner["name"])
            if flow is not None and (flow.get("spec") or {}).get("schedule"):
                _pass(flow)


def _pass(flow: dict[str, Any]) -> None:
    meta = flow["metadata"]
    try:
        status = reconcile_schedule(_STATE["kube"], flow, _STATE["clock"]())
    except CronError as exc:
        # The webhook refuses such a schedule; without it, say so on the Flow instead of retrying forever.
        LOG.warning("flow %s/%s: schedule not applied: %s", meta["namespace"], meta["name"], exc)
        return
    _STATE["kube"].patch_flow_status(meta["namespace"], meta["name"], status)
