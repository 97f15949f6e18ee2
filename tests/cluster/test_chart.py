"""The Helm chart: lint, render, install, and the least privilege of the operator's ServiceAccount.

Most tests install the chart with the operator scaled to zero and check the
objects and what the ServiceAccount may do. The last one runs the operator
the chart deploys (its pod's command runs as a local process under the
node agent, with the ServiceAccount's token) and runs a flow through it.
"""

from __future__ import annotations

import filecmp
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .conftest import free_port
from .test_crds import CRDS, REPO

pytestmark = pytest.mark.cluster

CHART = REPO / "charts" / "millrace"
RELEASE = "millrace"
SA = "millrace"


def _render(helm, *args: str) -> list[dict]:
    out = helm("template", RELEASE, str(CHART), "--namespace", "ns1", *args).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def _kinds(docs: list[dict]) -> dict[str, list[dict]]:
    by_kind: dict[str, list[dict]] = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], []).append(doc)
    return by_kind


def test_chart_lints(helm) -> None:
    helm("lint", "--strict", str(CHART))


def test_chart_crds_are_the_generated_crds() -> None:
    for name in ("flow.yaml", "flowrun.yaml"):
        assert filecmp.cmp(REPO / "crds" / name, CHART / "crds" / name, shallow=False), \
            f"charts/millrace/crds/{name} differs from crds/{name}: run `make crds`"


def test_namespaced_install_renders_roles_only_for_its_namespaces(helm) -> None:
    kinds = _kinds(_render(helm, "--set", "watch.namespaces={team-a}"))
    assert sorted(r["metadata"]["namespace"] for r in kinds["Role"]) == ["ns1", "team-a"]
    assert [c["metadata"]["name"] for c in kinds["ClusterRole"]] == ["millrace-ns1-crds"]
    webhook = kinds["ValidatingWebhookConfiguration"][0]["webhooks"]
    selector = webhook[0]["namespaceSelector"]["matchExpressions"][0]
    assert selector["values"] == ["ns1", "team-a"]
    assert {w["clientConfig"]["service"]["path"] for w in webhook} == {"/validate-flow", "/validate-flowrun"}
    assert all(w["clientConfig"]["caBundle"] for w in webhook)
    args = kinds["Deployment"][0]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[:3] == ["operator", "--namespace=ns1", "--namespace=team-a"]


def test_cluster_wide_install_uses_one_cluster_role(helm) -> None:
    kinds = _kinds(_render(helm, "--set", "watch.allNamespaces=true"))
    assert "Role" not in kinds
    assert len(kinds["ClusterRole"]) == 2 and len(kinds["ClusterRoleBinding"]) == 2
    assert "namespaceSelector" not in kinds["ValidatingWebhookConfiguration"][0]["webhooks"][0]
    assert "--all-namespaces" in kinds["Deployment"][0]["spec"]["template"]["spec"]["containers"][0]["args"]


def test_rules_name_every_resource_and_verb(helm) -> None:
    for role in _kinds(_render(helm))["Role"]:
        for rule in role["rules"]:
            assert "*" not in rule["verbs"] and "*" not in rule["resources"], rule
            if "secrets" in rule["resources"]:
                assert set(rule["verbs"]) == {"get", "list", "create", "update"}


def test_operator_pod_is_restricted_and_its_command_configurable(helm) -> None:
    pod = _kinds(_render(helm, "--set", "operator.command={/opt/venv/bin/millrace}"))["Deployment"][0]
    spec = pod["spec"]["template"]["spec"]
    container = spec["containers"][0]
    assert container["command"] == ["/opt/venv/bin/millrace"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                            "capabilities": {"drop": ["ALL"]}}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"step-api": 8080, "webhook": 8443, "health": 8081, "metrics": 9090, "hooks": 8790}


def _install(helm, namespace: str, folder: Path, values: dict) -> None:
    values_file = folder / "values.yaml"
    values_file.write_text(json.dumps(values))
    helm("install", RELEASE, str(CHART), "--namespace", namespace, "--values", str(values_file))


def _local_command() -> list[str]:
    # The node agent runs the container's command on this machine: the venv's millrace.
    return [str(Path(sys.executable).parent / "millrace")]


@pytest.fixture
def installed(kube, helm, namespace, tmp_path):
    _install(helm, namespace, tmp_path, {
        "operator": {"replicas": 0, "command": _local_command()},
        "webhook": {"url": "https://127.0.0.1:8443", "certIPs": ["127.0.0.1"]},
    })
    try:
        yield namespace
    finally:
        helm("uninstall", RELEASE, "--namespace", namespace, "--wait", check=False)


def test_install_creates_crds_service_account_rbac_and_webhook(kube, installed) -> None:
    for crd in CRDS:
        assert kube.get("crd", crd)
    assert kube.get("serviceaccount", SA, installed)
    assert kube.get("role", "millrace", installed)
    binding = kube.get("rolebinding", "millrace", installed)
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": SA, "namespace": installed}]
    assert kube.get("service", "millrace", installed)
    secret = kube.get("secret", "millrace-webhook-tls", installed)
    assert set(secret["data"]) == {"ca.crt", "tls.crt", "tls.key"}
    config = kube.get("validatingwebhookconfiguration", f"millrace-{installed}")
    assert config["webhooks"][0]["clientConfig"]["url"] == "https://127.0.0.1:8443/validate-flow"
    assert config["webhooks"][0]["clientConfig"]["caBundle"] == secret["data"]["ca.crt"]


def test_upgrade_keeps_the_webhook_certificate_and_signing_key(kube, helm, installed) -> None:
    before = [kube.get("secret", name, installed)["data"] for name in ("millrace-webhook-tls", "millrace-signing-key")]
    helm("upgrade", RELEASE, str(CHART), "--namespace", installed, "--reuse-values")
    after = [kube.get("secret", name, installed)["data"] for name in ("millrace-webhook-tls", "millrace-signing-key")]
    assert after == before


ALLOWED = [
    ("list", "flows"), ("watch", "flows"), ("patch", "flows/status"),
    ("create", "flowruns"), ("delete", "flowruns"), ("update", "flowruns/status"),
    ("create", "jobs.batch"), ("delete", "jobs.batch"), ("watch", "jobs.batch"),
    ("watch", "pods"), ("get", "pods/log"),
    ("create", "configmaps"), ("update", "configmaps"),
    ("list", "secrets"), ("create", "secrets"),
    ("create", "persistentvolumeclaims"), ("delete", "persistentvolumeclaims"),
    ("create", "events"),
]
DENIED_HERE = [
    ("delete", "secrets"), ("watch", "secrets"), ("create", "pods"), ("delete", "pods"), ("create", "pods/exec"),
    ("create", "deployments.apps"), ("create", "roles.rbac.authorization.k8s.io"),
    ("create", "rolebindings.rbac.authorization.k8s.io"), ("create", "serviceaccounts/token"),
    ("update", "flows"), ("delete", "flows"), ("patch", "jobs.batch"),
]
DENIED_CLUSTER = [
    ("get", "secrets", "-n", "kube-system"), ("list", "secrets", "--all-namespaces"),
    ("create", "jobs.batch", "-n", "default"), ("list", "flows", "--all-namespaces"),
    ("delete", "namespaces"), ("create", "namespaces"), ("list", "nodes"),
    ("create", "clusterrolebindings.rbac.authorization.k8s.io"),
    ("update", "validatingwebhookconfigurations.admissionregistration.k8s.io"),
    ("create", "customresourcedefinitions.apiextensions.k8s.io"),
    ("impersonate", "serviceaccounts"), ("escalate", "roles.rbac.authorization.k8s.io"),
]


def _can(kube, namespace: str, verb: str, resource: str, *scope: str) -> bool:
    what = resource.split("/")
    args = [verb, what[0]] + ([f"--subresource={what[1]}"] if len(what) > 1 else [])
    proc = kube.kubectl("auth", "can-i", *args, *(scope or ("-n", namespace)),
                        f"--as=system:serviceaccount:{namespace}:{SA}", check=False)
    assert proc.stdout.strip() in ("yes", "no"), proc.stderr
    return proc.stdout.strip() == "yes"


def test_service_account_can_do_what_the_operator_needs(kube, installed) -> None:
    missing = [rule for rule in ALLOWED if not _can(kube, installed, *rule)]
    assert missing == []
    assert _can(kube, installed, "watch", "customresourcedefinitions.apiextensions.k8s.io")


def test_service_account_can_do_nothing_more(kube, installed) -> None:
    granted = [rule for rule in DENIED_HERE + DENIED_CLUSTER if _can(kube, installed, *rule)]
    assert granted == []


def test_the_operator_the_chart_deploys_runs_a_flow_with_its_service_account(kube, helm, namespace, tmp_path) -> None:
    api = free_port()
    # Pods share this machine's network here: free ports, and the step API on loopback.
    # The webhook is off: the operator does not serve it yet.
    _install(helm, namespace, tmp_path, {
        "operator": {"command": _local_command(), "apiUrl": f"http://127.0.0.1:{api}",
                     "ports": {"api": api, "health": free_port(), "webhook": free_port(), "metrics": free_port(),
                               "hooks": free_port()}},
        "webhook": {"enabled": False},
    })
    try:
        pod = kube.wait_for(lambda: next(iter(kube.list("pods", namespace, "app.kubernetes.io/name=millrace")), None),
                            60, "the operator pod")
        assert pod["spec"]["serviceAccountName"] == SA
        flow = {"apiVersion": "millrace.dev/v1alpha1", "kind": "Flow", "metadata": {"name": "double"},
                "spec": {"summary": "double", "value": {"modules": [{"id": "double", "value": {
                    "type": "rawscript", "language": "python3", "content": "def main(x: int):\n    return x * 2\n",
                    "input_transforms": {"x": {"type": "javascript", "expr": "flow_input.x"}}}}]}}}
        kube.apply(flow, namespace)
        kube.apply({"apiVersion": "millrace.dev/v1alpha1", "kind": "FlowRun", "metadata": {"name": "double-1"},
                    "spec": {"flowRef": {"name": "double"}, "args": {"x": 21}}}, namespace)

        def finished() -> dict | None:
            status = (kube.get("flowrun", "double-1", namespace) or {}).get("status") or {}
            return status if status.get("phase") in ("Succeeded", "Failed") else None

        status = kube.wait_for(finished, 120, "the FlowRun to finish")
        assert (status["phase"], status["result"]) == ("Succeeded", 42), status
    finally:
        name = next((p["metadata"]["name"] for p in kube.list("pods", namespace, "app.kubernetes.io/name=millrace")), None)
        if name:
            print(kube.logs(namespace, name)[-5000:])
        helm("uninstall", RELEASE, "--namespace", namespace, "--wait", check=False)
