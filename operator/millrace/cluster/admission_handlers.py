"""The validating webhook as kopf handlers: thin wiring around `admission`.

Importing this module registers the handlers. The operator's startup
handler calls `configure_webhooks` to serve them; the chart's
ValidatingWebhookConfiguration sends Flow and FlowRun writes to
`/validate-flow` and `/validate-flowrun` (kopf routes by handler id).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kopf

from ..expressions import Sandbox
from ..model.resources import GROUP, VERSION
from .admission import Review, review_flow, review_flowrun, review_flowrun_update
from .policy import StepPolicy

FLOW_WEBHOOK = "validate-flow"
FLOWRUN_WEBHOOK = "validate-flowrun"
# 422 Unprocessable Entity: what the apiserver itself answers for an invalid object.
_INVALID = 422

# Reviews run in threads of their own, never behind kopf's handlers or the
# reconcile workers, so admission answers however many runs are live.
_REVIEWERS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="millrace-webhook")
# A V8 isolate must stay on one thread: one sandbox per reviewer thread.
_local = threading.local()
_POLICY: dict[str, StepPolicy] = {"policy": StepPolicy()}


def configure_webhooks(settings: kopf.OperatorSettings, *, host: str, port: int,
                       certfile: str, pkeyfile: str, policy: StepPolicy | None = None) -> None:
    """Serve the admission handlers over HTTPS on host:port with the given certificate.

    The ValidatingWebhookConfiguration (and its caBundle) belongs to the Helm
    release, so kopf is told not to manage one.
    """
    settings.admission.server = kopf.WebhookServer(addr=host, port=port, certfile=certfile, pkeyfile=pkeyfile)
    settings.admission.managed = None
    _POLICY["policy"] = policy or StepPolicy()


@kopf.index(GROUP, VERSION, "flows")
def flow_schemas(namespace: str, name: str, spec: Mapping[str, Any], **_: Any) -> dict[tuple[str, str], Any]:
    """The schema and top-level step ids of every watched Flow, to check FlowRun args and restartFrom
    without an API call."""
    modules = (spec.get("value") or {}).get("modules") or []
    return {(namespace, name): (spec.get("schema"), [m.get("id") if isinstance(m, Mapping) else None for m in modules])}


@kopf.on.validate(GROUP, VERSION, "flows", id=FLOW_WEBHOOK, operations=["CREATE", "UPDATE"])
async def validate_flow(name: str | None, spec: Mapping[str, Any], warnings: list[str], **_: Any) -> None:
    _answer(await _off_loop(lambda: review_flow(name or "", spec, _sandbox(), _POLICY["policy"])), warnings)


@kopf.on.validate(GROUP, VERSION, "flowruns", id=FLOWRUN_WEBHOOK, operations=["CREATE", "UPDATE"])
async def validate_flowrun(name: str | None, namespace: str, spec: Mapping[str, Any], warnings: list[str],
                          operation: str | None, old: Mapping[str, Any] | None, new: Mapping[str, Any] | None,
                          flow_schemas: kopf.Index[tuple[str, str], Any], **_: Any) -> None:
    def lookup(flow: str) -> Mapping[str, Any] | None:
        for schema, steps in flow_schemas.get((namespace, flow), ()):
            modules = [{"id": step} if step is not None else {} for step in steps]
            return {"spec": {"schema": schema, "value": {"modules": modules}}}
        return None

    if operation == "UPDATE" and old is not None and new is not None:
        _answer(await _off_loop(lambda: review_flowrun_update(name or "", old, new, _sandbox(), lookup, _POLICY["policy"])), warnings)
    else:
        _answer(await _off_loop(lambda: review_flowrun(name or "", spec, _sandbox(), lookup, _POLICY["policy"])), warnings)


async def _off_loop(review: Callable[[], Review]) -> Review:
    return await asyncio.get_running_loop().run_in_executor(_REVIEWERS, review)


def _answer(review: Review, warnings: list[str]) -> None:
    warnings.extend(review.warnings)
    if not review.allowed:
        raise kopf.AdmissionError("\n".join(review.errors), code=_INVALID)


def _sandbox() -> Sandbox:
    sandbox = getattr(_local, "sandbox", None)
    if sandbox is None:
        sandbox = _local.sandbox = Sandbox()
    return sandbox
