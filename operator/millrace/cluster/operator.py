"""`millrace operator`: the kopf handlers. Thin: each one calls a domain module.

Runs hold no thread: every FlowRun is a key in a queue that a fixed pool of
workers serves (see workqueue). Handlers only say which run has news (its
Jobs change, a step reports, a resume arrives, its spec changes); a pass asks
for its next wake-up (a retry delay, a sleep, an approval timeout, at the
latest the resync), and the queue's timer heap keeps it. When the operator
starts, kopf lists every FlowRun, which queues each unfinished run: that is
how a restarted operator adopts the Jobs it finds.
"""

from __future__ import annotations

import copy
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import kopf

from ..expressions import Sandbox
from ..model.resources import GROUP, VERSION, Condition
from . import names
from .admission import flow_ready_condition
from .kube import KubeApi
from .observe import ACTIVE_RUNS
from .reconcile import KIND_REPORT, KIND_RESUME, OperatorConfig, ReconcileCache, RunReconciler
from .status import flow_conditions, timestamp
from .watched import Watched
from .workqueue import KeyedQueue, WorkerPool

LOG = logging.getLogger("millrace.operator")

RunKey = tuple[str, str]  # (namespace, name)
QUEUE: KeyedQueue[RunKey] = KeyedQueue()
_STATE: dict[str, Any] = {}
WATCHED = Watched()
# The generation of each FlowRun last seen, to tell a spec change from our own status writes.
_GENERATIONS: dict[RunKey, int | None] = {}


def notify(namespace: str, name: str) -> None:
    """Something happened to this run: reconcile it soon."""
    QUEUE.notify((namespace, name))


def configure(config: OperatorConfig, kube: KubeApi | None = None, *,
              webhooks: Callable[[kopf.OperatorSettings], None] | None = None,
              leading: Callable[[], bool] = lambda: True) -> None:
    """Set what the handlers use; the CLI calls this before kopf runs."""
    _STATE["config"] = config
    _STATE["kube"] = kube or KubeApi()
    _STATE["webhooks"] = webhooks
    _STATE["leading"] = leading


@kopf.on.startup()
def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.posting.level = logging.WARNING
    settings.persistence.finalizer = "millrace.dev/operator"
    settings.watching.server_timeout = 300
    # No watching of namespaces or CRDs: the resources are found once at start-up (API
    # discovery), so the chart grants no cluster-wide read (a CRD installed later needs a restart).
    settings.scanning.disabled = True
    if _STATE.get("webhooks"):
        _STATE["webhooks"](settings)
    config: OperatorConfig = _STATE["config"]
    cache = ReconcileCache(watched=WATCHED)

    def make() -> RunReconciler:
        # One expression sandbox per worker: a V8 isolate must stay on the thread that made it.
        return RunReconciler(_STATE["kube"], config, Sandbox(), cache=cache)

    pool = WorkerPool(QUEUE, config.workers, make, lambda r: r.sandbox.close(), _reconcile)
    _STATE["pool"] = pool
    ACTIVE_RUNS.set_function(QUEUE.live)
    pool.start()


@kopf.on.cleanup()
def cleanup(**_: Any) -> None:
    pool = _STATE.pop("pool", None)
    if pool is not None:
        pool.stop()


def _reconcile(reconciler: RunReconciler, key: RunKey) -> float | None:
    """One pass over a run; when to look again (the queue's clock), or None once it ended."""
    if not _STATE["leading"]():
        # The Lease is overdue for renewal: act on nothing until it is renewed (or the process ends).
        return QUEUE.clock() + 1.0
    finished, wake_at = reconciler.reconcile(*key)
    if finished:
        # No resync: only its own wake-up (its retention), if it has one.
        return None if wake_at is None else QUEUE.clock() + max(0.0, wake_at - reconciler.clock())
    delay = reconciler.config.resync_s
    if wake_at is not None:
        delay = max(0.0, min(delay, wake_at - reconciler.clock()))
    return QUEUE.clock() + delay


@kopf.on.resume(GROUP, VERSION, "flows")
@kopf.on.create(GROUP, VERSION, "flows")
@kopf.on.update(GROUP, VERSION, "flows", field="spec")
def flow_changed(name: str, namespace: str, spec: kopf.Spec, meta: kopf.Meta, status: kopf.Status, **_: Any) -> None:
    """Report in the Flow's conditions what the webhook would have said: Ready, and the kstatus
    Stalled (an invalid flow stays so until its spec changes) and Reconciling (never: checked at once)."""
    with Sandbox() as sandbox:
        ready = flow_ready_condition(name, dict(spec), meta.get("generation"), sandbox, policy=_STATE["config"].policy)
    previous = [Condition.model_validate(c) for c in status.get("conditions") or []]
    made = flow_conditions(previous, ready, meta.get("generation"), timestamp(time.time()))
    _STATE["kube"].patch_flow_status(namespace, name, {
        "conditions": [c.model_dump(mode="json", by_alias=True, exclude_none=True) for c in made],
        "observedGeneration": meta.get("generation"),
    })


@kopf.on.event(GROUP, VERSION, "flowruns")
async def flowrun_event(type: str | None, body: kopf.Body, namespace: str, name: str, **_: Any) -> None:
    """A run is queued when first seen and when its spec changes, not on its own status writes."""
    key = (namespace, name)
    if type == "DELETED":
        _GENERATIONS.pop(key, None)
        WATCHED.forget_run(namespace, name)
        QUEUE.forget(key)
    else:
        WATCHED.put_run(copy.deepcopy(dict(body)))
        generation = body.get("metadata", {}).get("generation")
        if key not in _GENERATIONS or _GENERATIONS[key] != generation:
            _GENERATIONS[key] = generation
            notify(namespace, name)


@kopf.on.event(GROUP, VERSION, "flowruns", labels={names.LABEL_PARENT: kopf.PRESENT})
async def child_run_event(body: kopf.Body, namespace: str, **_: Any) -> None:
    """An inner flow's run changed: its parent may go on."""
    _notify_owner(body, namespace)


@kopf.on.event("batch", "v1", "jobs", labels={names.LABEL_RUN: kopf.PRESENT})
async def job_event(type: str | None, body: kopf.Body, namespace: str, **_: Any) -> None:
    """A step's Job matters to its run once it has ended or gone, and only if its step did not
    report (a report queues the run itself); a stuck pod is found by the run's resync."""
    meta = body.get("metadata", {})
    annotations = meta.get("annotations") or {}
    conditions = {c.get("type") for c in (body.get("status") or {}).get("conditions") or [] if c.get("status") == "True"}
    ended = type == "DELETED" or meta.get("deletionTimestamp") or conditions & {"Complete", "Failed", "SuccessCriteriaMet", "FailureTarget"}
    for owner in meta.get("ownerReferences") or []:
        if owner.get("kind") != "FlowRun" or not ended:
            continue
        try:
            report = names.report_name(owner["name"], annotations[names.ANNOTATION_STEP_PATH], int(annotations[names.ANNOTATION_ATTEMPT]))
        except (KeyError, ValueError):
            report = None
        if report is None or not WATCHED.has_record(namespace, owner["name"], report):
            notify(namespace, owner["name"])


def _notify_owner(body: kopf.Body, namespace: str) -> None:
    for owner in body.get("metadata", {}).get("ownerReferences") or []:
        if owner.get("kind") == "FlowRun":
            notify(namespace, owner["name"])


@kopf.on.event("", "v1", "configmaps", labels={names.LABEL_KIND: kopf.PRESENT, names.LABEL_RUN: kopf.PRESENT})
async def record_event(type: str | None, body: kopf.Body, namespace: str, **_: Any) -> None:
    labels = body.get("metadata", {}).get("labels") or {}
    if labels.get(names.LABEL_KIND) not in (KIND_REPORT, KIND_RESUME):
        return
    if type == "DELETED":
        WATCHED.drop_record(dict(body))
    elif WATCHED.put_record(copy.deepcopy(dict(body))):  # not news when the step API kept it already
        _notify_owner(body, namespace)
