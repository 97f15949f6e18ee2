"""The control plane is the real Kubernetes: schema validation, Jobs, GC, RBAC."""

from __future__ import annotations

import base64
import json
import uuid

import pytest

from .conftest import job_manifest

pytestmark = pytest.mark.cluster


def test_apiserver_reports_its_version(kube):
    out = json.loads(kube.kubectl("version", "-o", "json").stdout)
    assert out["serverVersion"]["major"] == "1"
    if kube.target == "local":
        # Built from the module proxy with the version ldflags set.
        assert out["serverVersion"]["gitVersion"].startswith("v1.")
        assert out["serverVersion"]["gitVersion"] == out["clientVersion"]["gitVersion"]


def test_crd_structural_schema_rejects_invalid_objects(kube, namespace):
    plural = f"gadgets{uuid.uuid4().hex[:6]}"
    group = "tests.millrace.dev"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group, "scope": "Namespaced",
            "names": {"plural": plural, "singular": plural[:-1], "kind": "Gadget" + plural[7:].upper(),
                      "listKind": "Gadget" + plural[7:].upper() + "List"},
            "versions": [{
                "name": "v1", "served": True, "storage": True,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "spec": {"type": "object", "required": ["size"], "properties": {
                            "size": {"type": "integer", "minimum": 1, "maximum": 10},
                            "color": {"type": "string", "enum": ["red", "blue"]}}},
                        "status": {"type": "object", "properties": {"phase": {"type": "string"}}},
                    }}},
            }],
        },
    }
    kind = crd["spec"]["names"]["kind"]
    kube.apply(crd)
    try:
        def established():
            obj = kube.get("crd", f"{plural}.{group}") or {}
            return any(c["type"] == "Established" and c["status"] == "True"
                       for c in (obj.get("status") or {}).get("conditions") or [])
        kube.wait_for(established, 30, "the CRD to be established")

        def gadget(name, spec, status=None):
            obj = {"apiVersion": f"{group}/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}
            if status:
                obj["status"] = status
            return obj

        # The API may take a moment to serve a new kind to kubectl's discovery.
        kube.wait_for(lambda: kube.apply(gadget("good", {"size": 3, "color": "red"}), namespace,
                                         check=False).returncode == 0, 30, "a valid object to be accepted")

        bad = kube.apply(gadget("bad", {"size": "three"}), namespace, check=False)
        assert bad.returncode != 0
        assert "spec.size" in bad.stderr and "Invalid value" in bad.stderr, bad.stderr

        out_of_range = kube.apply(gadget("big", {"size": 11, "color": "green"}), namespace, check=False)
        assert out_of_range.returncode != 0
        assert "spec.size" in out_of_range.stderr and "spec.color" in out_of_range.stderr

        missing = kube.apply(gadget("none", {"color": "blue"}), namespace, check=False)
        assert missing.returncode != 0 and "spec.size: Required value" in missing.stderr

        # Unknown fields: refused under kubectl's strict field validation,
        # pruned by the structural schema when validation is off.
        unknown = kube.apply(gadget("pruned", {"size": 2, "extra": "dropped"}), namespace, check=False)
        assert unknown.returncode != 0 and 'unknown field "spec.extra"' in unknown.stderr
        import yaml
        kube.kubectl("apply", "--validate=false", "-n", namespace, "-f", "-",
                     input=yaml.safe_dump(gadget("pruned", {"size": 2, "extra": "dropped"})))
        assert kube.get(plural, "pruned", namespace)["spec"] == {"size": 2}

        # With the status subresource, status is not written through the main resource...
        kube.apply(gadget("st", {"size": 1}, {"phase": "Ready"}), namespace)
        assert "status" not in kube.get(plural, "st", namespace) or \
            kube.get(plural, "st", namespace)["status"].get("phase") != "Ready"
        # ...but through /status.
        kube.kubectl("patch", plural, "st", "-n", namespace, "--subresource=status", "--type=merge",
                     "-p", '{"status": {"phase": "Ready"}}')
        assert kube.get(plural, "st", namespace)["status"]["phase"] == "Ready"
    finally:
        kube.kubectl("delete", "crd", f"{plural}.{group}", "--wait=false", check=False)


def test_job_runs_python_and_its_log_holds_42(kube, namespace):
    kube.apply(job_manifest("answer", ["python3", "-c", "print(42)"]), namespace)
    assert kube.job_condition(namespace, "answer") == "Complete"
    assert kube.logs(namespace, "job/answer").strip() == "42"
    pods = kube.list("pods", namespace, "job-name=answer")
    assert len(pods) == 1
    st = pods[0]["status"]
    assert st["phase"] == "Succeeded"
    term = st["containerStatuses"][0]["state"]["terminated"]
    assert term["exitCode"] == 0 and term["reason"] == "Completed"
    assert term["startedAt"] and term["finishedAt"]


def test_failing_pod_makes_the_job_failed(kube, namespace):
    script = ("import sys\n"
              "open('/dev/termination-log', 'w').write('bad input')\n"
              "print('failing on purpose', file=sys.stderr)\n"
              "sys.exit(3)\n")
    kube.apply(job_manifest("broken", ["python3", "-c", script]), namespace)
    assert kube.job_condition(namespace, "broken") == "Failed"
    job = kube.get("job", "broken", namespace)
    failed = next(c for c in job["status"]["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "BackoffLimitExceeded"
    pod = kube.list("pods", namespace, "job-name=broken")[0]
    assert pod["status"]["phase"] == "Failed"
    term = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert term["exitCode"] == 3 and term["reason"] == "Error"
    assert term["message"] == "bad input"
    assert "failing on purpose" in kube.logs(namespace, pod["metadata"]["name"])


def test_job_retries_until_backoff_limit(kube, namespace):
    kube.apply(job_manifest("flaky", ["python3", "-c", "raise SystemExit(1)"], backoff_limit=1), namespace)
    assert kube.job_condition(namespace, "flaky", timeout=120) == "Failed"
    assert len(kube.list("pods", namespace, "job-name=flaky")) == 2


def test_deleting_an_owner_garbage_collects_its_children(kube, namespace):
    owner = kube.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owner"},
                        "data": {"a": "1"}}, namespace)
    assert owner.returncode == 0
    uid = kube.get("configmap", "owner", namespace)["metadata"]["uid"]
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid}
    for i in range(3):
        kube.apply({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": f"child-{i}", "ownerReferences": [ref]}}, namespace)
    kube.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "child-secret",
                "ownerReferences": [ref]}, "stringData": {"x": "y"}}, namespace)
    kube.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "bystander"}}, namespace)

    kube.kubectl("delete", "configmap", "owner", "-n", namespace)
    kube.wait_for(lambda: all(kube.get("configmap", f"child-{i}", namespace) is None for i in range(3))
                  and kube.get("secret", "child-secret", namespace) is None,
                  60, "the garbage collector to delete the children")
    assert kube.get("configmap", "bystander", namespace) is not None


def test_deleting_a_job_deletes_its_pods(kube, namespace):
    kube.apply(job_manifest("short", ["python3", "-c", "print('hi')"]), namespace)
    assert kube.job_condition(namespace, "short") == "Complete"
    assert kube.list("pods", namespace, "job-name=short")
    kube.kubectl("delete", "job", "short", "-n", namespace, "--cascade=foreground")
    kube.wait_for(lambda: not kube.list("pods", namespace, "job-name=short"), 60,
                  "the Job's pods to be garbage collected")


def test_service_account_is_refused_what_its_role_does_not_grant(kube, namespace):
    kube.apply([
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "reader"}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "cm-reader"},
         "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": "reader-cm-reader"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "cm-reader"},
         "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": namespace}]},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "visible"}, "data": {"k": "v"}},
    ], namespace)
    token = kube.kubectl("create", "token", "reader", "-n", namespace).stdout.strip()
    assert token.count(".") == 2  # a signed JWT from the service-account signing key

    as_sa = ["--token", token, "--kubeconfig", "/dev/null", "--server", _server(kube),
             "--certificate-authority", _ca_file(kube)]
    ok = kube.kubectl(*as_sa, "get", "configmap", "visible", "-n", namespace, "-o", "json")
    assert json.loads(ok.stdout)["data"] == {"k": "v"}

    for args in (["get", "secrets", "-n", namespace],
                 ["create", "configmap", "nope", "-n", namespace],
                 ["get", "configmaps", "-n", "default"],
                 ["delete", "configmap", "visible", "-n", namespace]):
        refused = kube.kubectl(*as_sa, *args, check=False)
        assert refused.returncode != 0, args
        assert "forbidden" in refused.stderr.lower() and f"system:serviceaccount:{namespace}:reader" in refused.stderr
    who = kube.kubectl(*as_sa, "auth", "whoami", "-o", "json")
    assert json.loads(who.stdout)["status"]["userInfo"]["username"] == f"system:serviceaccount:{namespace}:reader"


def _server(kube) -> str:
    return kube.kubectl("config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}").stdout


_CA_CACHE: dict[str, str] = {}


def _ca_file(kube) -> str:
    if kube.kubeconfig not in _CA_CACHE:
        import tempfile
        data = kube.kubectl("config", "view", "--minify", "--raw", "-o",
                            "jsonpath={.clusters[0].cluster.certificate-authority-data}").stdout
        f = tempfile.NamedTemporaryFile("wb", suffix=".crt", delete=False)
        f.write(base64.b64decode(data))
        f.close()
        _CA_CACHE[kube.kubeconfig] = f.name
    return _CA_CACHE[kube.kubeconfig]


def test_deleting_a_namespace_deletes_its_content(kube):
    name = f"doomed-{uuid.uuid4().hex[:6]}"
    kube.kubectl("create", "namespace", name)
    kube.wait_for(lambda: kube.get("serviceaccount", "default", name), 30, "the default ServiceAccount")
    kube.apply([
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {
            "restartPolicy": "Never", "terminationGracePeriodSeconds": 2,
            "containers": [{"name": "main", "image": "python:3.12-slim",
                            "command": ["python3", "-c", "import time; time.sleep(600)"]}]}},
    ], name)
    kube.wait_for(lambda: (kube.get("pod", "p", name).get("status") or {}).get("phase") == "Running",
                  60, "the pod to run")
    kube.kubectl("delete", "namespace", name, "--wait=false")
    kube.wait_for(lambda: kube.get("namespace", name) is None, 90,
                  "the namespace controller to empty and remove the namespace")
