"""Flow webhooks in the cluster: a POST to the operator starts a FlowRun, as a sender would call it."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from .conftest import free_port
from .test_operator import Operator, flow_manifest, operator, python_step  # noqa: F401  (fixture)

pytestmark = pytest.mark.cluster

SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
GREET = python_step("greet", "def main(name):\n    return f'hello {name}'\n", name="flow_input.name")
PRE = {"id": "preprocessor", "value": {"type": "rawscript", "language": "python3",
                                       "content": "def preprocessor(event):\n    return {'name': event['body']['user'] + '!' + event['query']['via']}\n",
                                       "input_transforms": {"event": {"type": "static"}}}}


def post(url: str, body: bytes, token: str | None = None) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=body, headers=headers), timeout=200) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture
def hooks(operator: Operator) -> str:  # noqa: F811
    port = free_port()
    operator.stop()
    operator.start(MILLRACE_HOOKS_PORT=str(port))
    return f"http://127.0.0.1:{port}"


def test_a_post_with_the_token_starts_a_run_and_bad_requests_are_refused(kube: Any, namespace: str, hooks: str) -> None:
    kube.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "greet-token",
                "labels": {"millrace.dev/kind": "webhook-token"}}, "stringData": {"token": "t0ken"}}, namespace)
    # A Secret without the label is never read: naming it gives no token.
    kube.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "other"}, "stringData": {"token": "x"}}, namespace)
    flow = flow_manifest("greet", [GREET])
    flow["spec"]["schema"] = SCHEMA
    flow["spec"]["webhook"] = {"tokenSecretRef": {"name": "greet-token"}, "maxBodyBytes": 200}
    kube.apply(flow, namespace)
    url = f"{hooks}/hooks/{namespace}/greet"
    status = kube.wait_for(lambda: (kube.get("flow", "greet", namespace) or {}).get("status", {}).get("webhookUrl"),
                           timeout=60, what="the webhook URL in the Flow's status")
    assert status == url
    code, outcome = post(f"{url}/wait", b'{"name": "Ada"}', token="t0ken")
    assert code == 200 and outcome["status"] == "succeeded" and outcome["result"] == "hello Ada"
    run = kube.get("flowrun", outcome["run"], namespace)
    assert run["metadata"]["labels"]["millrace.dev/trigger"] == "webhook"
    assert post(url, b'{"name": "Ada"}', token="wrong")[0] == 401
    assert post(url, b'{"name": "Ada"}')[0] == 401
    code, refusal = post(url, b'{"nme": "Ada"}', token="t0ken")
    assert code == 400 and "field 'name'" in refusal["message"]
    assert post(url, b'{"name": "' + b"a" * 300 + b'"}', token="t0ken")[0] == 413
    assert post(f"{hooks}/hooks/{namespace}/nothing", b"{}", token="t0ken")[0] == 404
    flow["spec"]["webhook"] = {"tokenSecretRef": {"name": "other"}}
    kube.apply(flow, namespace)
    assert post(url, b'{"name": "Ada"}', token="x")[0] == 401


def test_a_signed_url_and_a_preprocessor(kube: Any, namespace: str, hooks: str) -> None:
    flow = flow_manifest("pre", [GREET], preprocessor_module=PRE)
    flow["spec"]["schema"] = SCHEMA
    flow["spec"]["webhook"] = {"signedUrl": True}
    kube.apply(flow, namespace)

    def signed() -> str | None:
        secret = kube.get("secret", "pre-webhook-url", namespace)
        return base64.b64decode(secret["data"]["url"]).decode() if secret else None

    url = kube.wait_for(signed, timeout=60, what="the signed URL's Secret")
    assert "?sig=" in url and url.startswith(f"{hooks}/hooks/{namespace}/pre")
    base, _, query = url.partition("?")
    code, outcome = post(f"{base}/wait?{query}&via=hook", b'{"user": "Ada"}')
    assert code == 200 and outcome["result"] == "hello Ada!hook", outcome
    run = kube.get("flowrun", outcome["run"], namespace)
    assert run["spec"]["preprocess"] is True
    assert "sig" not in json.dumps(run["spec"]["args"]["event"]["query"])
    assert post(f"{base}?sig=forged", b'{"user": "x"}')[0] == 401
