"""Secrets stay in Secrets, and step pods get only what the operator's policy allows.

A security engineer's view of a run: every object of its namespace, of every
type the API lists, and the operator's log are searched for a secret
variable's value; only the variable's own Secret and the step Secrets (a
step's arguments) may hold it.
"""

from __future__ import annotations

import base64
import json
import secrets
from typing import Any

import pytest

from millrace.cluster.names import child_run_name, data_name

from millrace.runtime.redact import MASK

from .test_admission import _rejected, webhook  # noqa: F401 - the webhook fixture
from .test_operator import Operator, flow_manifest, labelled, operator, python_step, run_manifest, wait_phase  # noqa: F401

pytestmark = pytest.mark.cluster

PASSWORD_PATH = "f/app/password"


def bash_step(step_id: str, code: str, **statics: Any) -> dict[str, Any]:
    return {"id": step_id, "value": {"type": "rawscript", "language": "bash", "content": code,
                                     "input_transforms": {k: {"type": "static", "value": v} for k, v in statics.items()}}}


def every_object(kube: Any, namespace: str) -> list[dict[str, Any]]:
    """Every object of the namespace, of every namespaced type that can be listed."""
    types = kube.kubectl("api-resources", "--verbs=list", "--namespaced", "-o", "name").stdout.split()
    return [item for kind in types for item in json.loads(kube.kubectl("get", kind, "-n", namespace, "-o", "json").stdout)["items"]]


def shown(obj: dict[str, Any]) -> str:
    """The object as text, a Secret's data decoded (base64 would hide a value from the search)."""
    if obj.get("kind") == "Secret":
        obj = {**obj, "data": {k: base64.b64decode(v).decode("utf-8", "replace") for k, v in (obj.get("data") or {}).items()}}
    return json.dumps(obj)


def holders(kube: Any, namespace: str, value: str) -> list[str]:
    return sorted(f"{o['kind']}/{o['metadata']['name']}" for o in every_object(kube, namespace) if value in shown(o))


def test_no_object_of_the_run_and_no_operator_log_holds_a_secret_value(kube: Any, namespace: str,
                                                                       operator: Operator) -> None:
    password = f"pw-{secrets.token_hex(12)}"
    kube.apply(labelled("variable", PASSWORD_PATH, {"value": password}, secret=True), namespace)
    echo = bash_step("echo", 'password="$1"\necho "got $password ${#password}"\n', password=f"$var:{PASSWORD_PATH}")
    # A step that sets a secret variable (twice: the second replaces it), then fails quoting both secrets.
    fail = python_step("fail", "import wmill\n\ndef main(pw: str):\n"
                               "    wmill.set_variable('f/app/copy', pw + '-copy', is_secret=True)\n"
                               "    wmill.set_variable('f/app/copy', pw + '-copy', is_secret=True)\n"
                               "    raise RuntimeError(f'refused {pw} and {pw}-copy')\n",
                       pw=f"variable('{PASSWORD_PATH}')")
    kube.apply(flow_manifest("leaky", [echo, fail]), namespace)
    kube.apply(run_manifest("leaky-1", "leaky"), namespace)
    status = wait_phase(kube, namespace, "leaky-1")
    # The steps had the real value (its length shows it), and the records show the mask.
    assert status["phase"] == "Failed", status
    assert status["steps"]["echo"]["result"] == f"got {MASK} {len(password)}"
    assert "refused" in status["error"]["message"] and MASK in status["error"]["message"]
    events = kube.list("events", namespace)
    assert any(e["reason"] == "StepFailed" and MASK in e["message"] for e in events), [e["message"] for e in events]

    found = holders(kube, namespace, password)
    # The variable the test made, and the one the step created (named from its path, injectively).
    allowed = {"Secret/f-app-password", f"Secret/{data_name('variable', 'f/app/copy')}"}
    allowed |= {f"Secret/{s['metadata']['name']}" for s in kube.list("secrets", namespace, "millrace.dev/kind=step")}
    assert [name for name in found if name not in allowed] == []
    # The search itself works: the step Secrets do hold the value (the steps' arguments).
    assert any(name.startswith("Secret/leaky-1-") for name in found), found
    assert password not in operator.log.read_text(errors="replace")


def test_an_inner_flow_gets_secret_args_from_a_secret_it_owns(kube: Any, namespace: str, operator: Operator) -> None:
    password = f"pw-{secrets.token_hex(12)}"
    kube.apply(labelled("variable", PASSWORD_PATH, {"value": password}, secret=True), namespace)
    kube.apply(flow_manifest("f-app-inner", [python_step("check", "def main(pw: str):\n    return len(pw)\n",
                                                         pw="flow_input.pw")]), namespace)
    sub = {"id": "sub", "value": {"type": "flow", "path": "f/app/inner",
                                  "input_transforms": {"pw": {"type": "static", "value": f"$var:{PASSWORD_PATH}"}}}}
    kube.apply(flow_manifest("outer", [sub]), namespace)
    kube.apply(run_manifest("outer-1", "outer"), namespace)
    status = wait_phase(kube, namespace, "outer-1")
    assert status["phase"] == "Succeeded" and status["result"] == len(password), status
    child = kube.get("flowrun", child_run_name("outer-1", "sub", 1), namespace)
    assert child["spec"].get("args") in (None, {}) and child["spec"]["argsSecret"]
    secret = kube.get("secret", child["spec"]["argsSecret"], namespace)
    assert secret["metadata"]["ownerReferences"][0]["uid"] == child["metadata"]["uid"]
    allowed = {"Secret/f-app-password", f"Secret/{child['spec']['argsSecret']}"}
    allowed |= {f"Secret/{s['metadata']['name']}" for s in kube.list("secrets", namespace, "millrace.dev/kind=step")}
    assert [name for name in holders(kube, namespace, password) if name not in allowed] == []

    # A run naming a Secret it does not own reads nothing from it.
    kube.apply({"apiVersion": "millrace.dev/v1alpha1", "kind": "FlowRun", "metadata": {"name": "thief"},
                "spec": {"flowRef": {"name": "f-app-inner"}, "argsSecret": child["spec"]["argsSecret"]}}, namespace)
    stolen = wait_phase(kube, namespace, "thief")
    assert stolen["phase"] == "Failed" and "spec.argsSecret" in stolen["error"]["message"], stolen
    assert not stolen.get("steps", {}).get("check", {}).get("attempts")


def test_step_pods_run_restricted_with_a_writable_tmp(kube: Any, namespace: str, operator: Operator) -> None:
    # The apiserver's PodSecurity admission refuses any pod of this namespace that is not restricted.
    kube.kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    tmp = bash_step("tmp", 'f=$(mktemp)\necho "ok $TMPDIR" > "$f"\ncat "$f"\n')
    kube.apply(flow_manifest("strict", [tmp, python_step(
        "py", "import tempfile\n\ndef main():\n    with tempfile.NamedTemporaryFile() as f:\n        return f.name\n")]), namespace)
    kube.apply(run_manifest("strict-1", "strict"), namespace)
    status = wait_phase(kube, namespace, "strict-1")
    assert status["phase"] == "Succeeded", status
    # The test node agent maps the pod's paths to folders of its own: TMPDIR names the /tmp volume.
    tmpdir = status["steps"]["tmp"]["result"].removeprefix("ok ")
    assert tmpdir.endswith("/tmp") and status["steps"]["py"]["result"].rsplit("/", 1)[0].endswith("/tmp")
    pod = kube.list("pods", namespace, "millrace.dev/run=strict-1")[0]["spec"]
    container = pod["containers"][0]
    assert pod["automountServiceAccountToken"] is False and pod["serviceAccountName"] == "default"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]


def test_a_flow_asking_for_more_than_the_policy_fails_without_a_pod(kube: Any, namespace: str,
                                                                   operator: Operator) -> None:
    flow = flow_manifest("root", [python_step("a", "def main():\n    return 1\n")])
    flow["spec"]["runtime"] = {"serviceAccountName": "millrace", "securityContext": {"privileged": True}}
    kube.apply({"apiVersion": "millrace.dev/v1alpha1", "kind": "FlowRun", "metadata": {"name": "root-1"},
                "spec": {"flow": flow["spec"]}}, namespace)
    status = wait_phase(kube, namespace, "root-1")
    assert status["phase"] == "Failed", status
    message = status["error"]["message"]
    assert ("field 'spec.runtime.serviceAccountName': \"millrace\" is not allowed by the operator policy "
            "(allowed: default)") in message
    assert "spec.runtime.securityContext.privileged" in message
    assert kube.list("jobs", namespace) == []


def test_the_webhook_refuses_a_flow_asking_for_more_than_the_policy(kube: Any, webhook: str) -> None:  # noqa: F811
    flow = flow_manifest("root", [python_step("a", "def main():\n    return 1\n")])
    flow["spec"]["runtime"] = {"serviceAccountName": "millrace"}
    assert "spec.runtime.serviceAccountName" in _rejected(kube, webhook, flow)
    inline = {"apiVersion": "millrace.dev/v1alpha1", "kind": "FlowRun", "metadata": {"name": "root-1"},
              "spec": {"flow": {**flow["spec"], "runtime": {"securityContext": {"runAsUser": 0}}}}}
    assert "spec.runtime.securityContext.runAsUser" in _rejected(kube, webhook, inline)
    flow["spec"]["runtime"] = {"serviceAccountName": "default"}
    kube.apply(flow, webhook)
