"""kopf handlers for Flow schedules. Thin: each calls millrace.cluster.schedules.

The Flows with a schedule are kept from kopf's watch (an event handler, so
no finalizer is put on them: deleting a Flow never waits for the operator).
One thread looks at them each second and does a pass only when the next
fire time has come (waiting costs no request); a scheduled run that ends
triggers a pass at once, so its outcome shows on the Flow, history is
pruned and a run a `Forbid` policy held back starts.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import kopf

from ..model.resources import GROUP, VERSION
from ..model.run import TERMINAL_RUN_PHASES
from ..model.times import parse_time
from ..schedule.cron import CronError
from . import names
from .kube import KubeApi
from .schedules import due_soon, reconcile_schedule

LOG = logging.getLogger("millrace.schedules")
TICK_S = 1.0
_STATE: dict[str, Any] = {"clock": time.time}
# The latest body of every Flow with a schedule, by (namespace, name).
_SCHEDULED: dict[tuple[str, str], dict[str, Any]] = {}
_LOCK = threading.Lock()


def clock_starting_at(start: str | None) -> Callable[[], float]:
    """The clock schedules read: the real one, or, given an RFC 3339 `start`, one that starts
    there and runs at real speed (MILLRACE_SCHEDULE_CLOCK_START: how the tests reach a DST
    change without waiting for it). Only fire times follow it; runs keep real timestamps."""
    begin = parse_time(start)
    if begin is None:
        return time.time
    offset = begin - time.time()
    return lambda: time.time() + offset


def configure(kube: KubeApi, clock: Callable[[], float] = time.time) -> None:
    _STATE["kube"], _STATE["clock"] = kube, clock
    threading.Thread(target=_ticker, name="schedules", daemon=True).start()


@kopf.on.event(GROUP, VERSION, "flows")
def flow_seen(body: kopf.Body, namespace: str, name: str, type: str | None, **_: Any) -> None:  # noqa: A002
    with _LOCK:
        if type == "DELETED" or not (body.get("spec") or {}).get("schedule"):
            _SCHEDULED.pop((namespace, name), None)
        else:
            _SCHEDULED[(namespace, name)] = dict(body)


def _ticker() -> None:
    while True:
        time.sleep(TICK_S)
        with _LOCK:
            flows = list(_SCHEDULED.values())
        for flow in flows:
            if due_soon(flow, _STATE["clock"]()):
                try:
                    _pass(flow)
                except Exception:  # noqa: BLE001 - one Flow's failure must not stop the others' schedules
                    LOG.exception("flow %s/%s: schedule pass failed", flow["metadata"]["namespace"],
                                  flow["metadata"]["name"])


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
