"""Webhooks in the cluster: a POST to the operator starts a FlowRun of a Flow that has `spec.webhook`.

The URL of Flow `f` in namespace `ns` is `<hooks URL>/hooks/ns/f`. A caller
proves itself with the bearer token kept in the Secret the Flow names (it
must be labelled `millrace.dev/kind: webhook-token`: the operator reads no
Secret a flow author merely names), or with the signed URL the operator
keeps in the Secret `<flow>-webhook-url` when `signedUrl` is set. A run
started by a webhook is named `<flow>-hook-<random>`, labelled
`millrace.dev/trigger: webhook`, and for a flow with a preprocessor_module
carries the trigger's event with `spec.preprocess`.
"""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Callable
from typing import Any, Protocol

from pydantic import ValidationError

from ..model.resources import API_VERSION, FlowSpec, Webhook
from ..model.run import TERMINAL_RUN_PHASES
from ..triggers.server import HookTarget
from ..triggers.webhook import HookPolicy, signed_url_signature
from . import names

KIND_WEBHOOK_TOKEN = "webhook-token"
LABEL_TRIGGER = "millrace.dev/trigger"
WAIT_LIMIT_S = 300.0


class TriggerKube(Protocol):
    def get_flow(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    def get_secret(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    def create_flowrun(self, obj: dict[str, Any]) -> bool: ...

    def get_flowrun(self, namespace: str, name: str) -> dict[str, Any] | None: ...


def hook_path(namespace: str, flow: str) -> str:
    return f"{namespace}/{flow}"


def url_secret_name(flow: str) -> str:
    # Named for people to find (Secret names take 253 characters), owned by the Flow.
    return f"{flow}-webhook-url"


def resolver(kube: TriggerKube, sign: Callable[[str], str], *, clock: Callable[[], float] = time.monotonic,
             sleep: Callable[[float], None] = time.sleep) -> Callable[[str], HookTarget | None]:
    """The TriggerServer's lookup: `<namespace>/<flow>` to what starting that flow takes."""

    def resolve(key: str) -> HookTarget | None:
        namespace, _, name = key.partition("/")
        flow = kube.get_flow(namespace, name) if namespace and name and "/" not in name else None
        if flow is None or not (flow.get("spec") or {}).get("webhook"):
            return None
        try:
            spec = FlowSpec.model_validate(flow["spec"])
        except ValidationError:
            return None  # the Flow's Ready condition says what is wrong with it
        assert spec.webhook is not None
        policy = HookPolicy(
            flow=name, schema=spec.schema_, token=_token(kube, namespace, spec.webhook),
            signature=signed_url_signature(sign, namespace, name) if spec.webhook.signed_url else None,
            preprocessor=spec.value.preprocessor_module is not None, max_body=spec.webhook.max_body_bytes)

        def start(args: dict[str, Any]) -> str:
            run = f"{names.identity_name(name, limit=48)}-hook-{secrets.token_hex(4)}"
            kube.create_flowrun({
                "apiVersion": API_VERSION, "kind": "FlowRun",
                "metadata": {"name": run, "namespace": namespace,
                             "labels": {names.LABEL_FLOW: names.label_value(name), LABEL_TRIGGER: "webhook"}},
                "spec": {"flowRef": {"name": name}, "args": args, "preprocess": policy.preprocessor},
            })
            return run

        def wait(run: str) -> dict[str, Any]:
            deadline = clock() + WAIT_LIMIT_S
            status: dict[str, Any] = {}
            while clock() < deadline:
                status = (kube.get_flowrun(namespace, run) or {}).get("status") or {}
                if status.get("phase") in TERMINAL_RUN_PHASES:
                    break
                sleep(0.5)
            return {"run": run, "status": str(status.get("phase") or "Pending").lower(),
                    "result": status.get("result"), "error": status.get("error")}

        return HookTarget(policy=policy, start=start, wait=wait)

    return resolve


def _token(kube: TriggerKube, namespace: str, webhook: Webhook) -> str | None:
    ref = webhook.token_secret_ref
    if ref is None:
        return None
    secret = kube.get_secret(namespace, ref.name)
    labels = ((secret or {}).get("metadata") or {}).get("labels") or {}
    if secret is None or labels.get(names.LABEL_KIND) != KIND_WEBHOOK_TOKEN:
        return None
    raw = (secret.get("data") or {}).get(ref.key)
    return base64.b64decode(raw).decode("utf-8").strip() if raw else None


def flow_webhook_status(flow: dict[str, Any], hooks_url: str, sign: Callable[[str], str]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The Flow status field and, with signedUrl, the Secret holding the signed URL (owned by the Flow)."""
    meta = flow["metadata"]
    url = f"{hooks_url}/hooks/{hook_path(meta['namespace'], meta['name'])}"
    webhook = (flow.get("spec") or {}).get("webhook") or {}
    secret = None
    if webhook.get("signedUrl"):
        signed = f"{url}?sig={signed_url_signature(sign, meta['namespace'], meta['name'])}"
        secret = {
            "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": url_secret_name(meta["name"]), "namespace": meta["namespace"],
                         "labels": {names.LABEL_FLOW: names.label_value(meta["name"])},
                         "ownerReferences": [{"apiVersion": API_VERSION, "kind": "Flow", "name": meta["name"],
                                              "uid": meta["uid"], "controller": True}]},
            "stringData": {"url": signed},
        }
    return {"webhookUrl": url}, secret
