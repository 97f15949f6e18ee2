"""`millrace operator`: the kopf handlers. Thin: each one calls a domain module.

Every FlowRun gets a daemon that reconciles it whenever something happens
to it (its Jobs change, a step reports, a resume arrives) or a timer it asked
for is due, and ends when the run does. kopf restarts the daemons of
unfinished runs when the operator starts, which is how a restarted operator
adopts the Jobs it finds.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import kopf

from ..expressions import Sandbox
from ..model.resources import GROUP, VERSION
from . import names
from .admission import flow_ready_condition
from .kube import KubeApi
from .observe import ACTIVE_RUNS
from .reconcile import KIND_REPORT, KIND_RESUME, OperatorConfig, RunReconciler
from .status import timestamp

LOG = logging.getLogger("millrace.operator")


class Wakeups:
    """One event per run: handlers set it, the run's daemon waits on it."""

    def __init__(self) -> None:
        self._events: dict[tuple[str, str], threading.Event] = defaultdict(threading.Event)
        self._lock = threading.Lock()

    def get(self, namespace: str, name: str) -> threading.Event:
        with self._lock:
            return self._events[(namespace, name)]

    def notify(self, namespace: str, name: str) -> None:
        self.get(namespace, name).set()

    def forget(self, namespace: str, name: str) -> None:
        with self._lock:
            self._events.pop((namespace, name), None)


WAKEUPS = Wakeups()
_STATE: dict[str, Any] = {}


def configure(config: OperatorConfig, kube: KubeApi | None = None, *,
              webhooks: Callable[[kopf.OperatorSettings], None] | None = None) -> None:
    """Set what the handlers use; the CLI calls this before kopf runs."""
    _STATE["config"] = config
    _STATE["kube"] = kube or KubeApi()
    _STATE["webhooks"] = webhooks


@kopf.on.startup()
def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.posting.level = logging.WARNING
    settings.execution.max_workers = int(os.environ.get("MILLRACE_MAX_WORKERS", "200"))
    settings.persistence.finalizer = "millrace.dev/operator"
    settings.watching.server_timeout = 300
    # No watching of namespaces or CRDs: the resources are found once at start-up (API
    # discovery), so the chart grants no cluster-wide read (a CRD installed later needs a restart).
    settings.scanning.disabled = True
    if _STATE.get("webhooks"):
        _STATE["webhooks"](settings)


@kopf.on.resume(GROUP, VERSION, "flows")
@kopf.on.create(GROUP, VERSION, "flows")
@kopf.on.update(GROUP, VERSION, "flows", field="spec")
def flow_changed(name: str, namespace: str, spec: kopf.Spec, meta: kopf.Meta, status: kopf.Status, **_: Any) -> None:
    """Report in the Flow's Ready condition what the webhook would have said."""
    with Sandbox() as sandbox:
        condition = flow_ready_condition(name, dict(spec), meta.get("generation"), sandbox, now=timestamp(time.time()),
                                         policy=_STATE["config"].policy)
    previous = next((c for c in (status.get("conditions") or []) if c.get("type") == condition.type), None)
    if previous and previous.get("status") == condition.status and previous.get("reason") == condition.reason:
        condition.last_transition_time = previous.get("lastTransitionTime")
    _STATE["kube"].patch_flow_status(namespace, name, {
        "conditions": [condition.model_dump(mode="json", by_alias=True, exclude_none=True)],
        "observedGeneration": meta.get("generation"),
    })


@kopf.daemon(GROUP, VERSION, "flowruns", cancellation_timeout=5.0)
def run_daemon(name: str, namespace: str, stopped: kopf.DaemonStopped, **_: Any) -> None:
    reconciler = RunReconciler(_STATE["kube"], _STATE["config"], Sandbox())
    wakeup = WAKEUPS.get(namespace, name)
    ACTIVE_RUNS.inc()
    try:
        while not stopped:
            wakeup.clear()
            finished, wake_at = reconciler.reconcile(namespace, name)
            if finished:
                return
            resync = reconciler.config.resync_s
            timeout = resync if wake_at is None else max(0.0, min(resync, wake_at - reconciler.clock()))
            wakeup.wait(timeout)
    finally:
        ACTIVE_RUNS.dec()
        reconciler.sandbox.close()
        WAKEUPS.forget(namespace, name)


@kopf.on.update(GROUP, VERSION, "flowruns", field="spec")
def run_spec_changed(name: str, namespace: str, **_: Any) -> None:
    WAKEUPS.notify(namespace, name)


@kopf.on.event(GROUP, VERSION, "flowruns", labels={names.LABEL_PARENT: kopf.PRESENT})
def child_run_event(body: kopf.Body, namespace: str, **_: Any) -> None:
    """An inner flow's run changed: its parent may go on."""
    _notify_owner(body, namespace)


@kopf.on.event("batch", "v1", "jobs", labels={names.LABEL_RUN: kopf.PRESENT})
def job_event(body: kopf.Body, namespace: str, **_: Any) -> None:
    _notify_owner(body, namespace)


def _notify_owner(body: kopf.Body, namespace: str) -> None:
    for owner in body.get("metadata", {}).get("ownerReferences") or []:
        if owner.get("kind") == "FlowRun":
            WAKEUPS.notify(namespace, owner["name"])


@kopf.on.event("", "v1", "configmaps", labels={names.LABEL_KIND: kopf.PRESENT, names.LABEL_RUN: kopf.PRESENT})
def record_event(body: kopf.Body, namespace: str, **_: Any) -> None:
    labels = body.get("metadata", {}).get("labels") or {}
    if labels.get(names.LABEL_KIND) in (KIND_REPORT, KIND_RESUME):
        _notify_owner(body, namespace)
