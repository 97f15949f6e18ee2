"""The validating webhook as kopf handlers: thin wiring around `admission`.

Importing this module registers the handlers. The operator's startup
handler calls `configure_webhooks` to serve them; the chart's
ValidatingWebhookConfiguration sends Flow and FlowRun writes to
`/validate-flow` and `/validate-flowrun` (kopf routes by handler id).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import kopf

from ..expressions import Sandbox
from ..model.resources import GROUP, VERSION
from .admission import Review, review_flow, review_flowrun
from .policy import StepPolicy

FLOW_WEBHOOK = "validate-flow"
FLOWRUN_WEBHOOK = "validate-flowrun"
# 422 Unprocessable Entity: what the apiserver itself answers for an invalid object.
_INVALID = 422

# A V8 isolate must stay on one thread; kopf runs sync handlers in a thread pool.
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
    """The schema of every watched Flow, to check FlowRun args without an API call."""
    return {(namespace, name): spec.get("schema")}


@kopf.on.validate(GROUP, VERSION, "flows", id=FLOW_WEBHOOK, operations=["CREATE", "UPDATE"])
def validate_flow(name: str | None, spec: Mapping[str, Any], warnings: list[str], **_: Any) -> None:
    _answer(review_flow(name or "", spec, _sandbox(), _POLICY["policy"]), warnings)


@kopf.on.validate(GROUP, VERSION, "flowruns", id=FLOWRUN_WEBHOOK, operations=["CREATE", "UPDATE"])
def validate_flowrun(name: str | None, namespace: str, spec: Mapping[str, Any], warnings: list[str],
                     flow_schemas: kopf.Index[tuple[str, str], Any], **_: Any) -> None:
    def lookup(flow: str) -> Mapping[str, Any] | None:
        for schema in flow_schemas.get((namespace, flow), ()):
            return {"spec": {"schema": schema}}
        return None

    _answer(review_flowrun(name or "", spec, _sandbox(), lookup, _POLICY["policy"]), warnings)


def _answer(review: Review, warnings: list[str]) -> None:
    warnings.extend(review.warnings)
    if not review.allowed:
        raise kopf.AdmissionError("\n".join(review.errors), code=_INVALID)


def _sandbox() -> Sandbox:
    sandbox = getattr(_local, "sandbox", None)
    if sandbox is None:
        sandbox = _local.sandbox = Sandbox()
    return sandbox
