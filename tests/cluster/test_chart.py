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
import re
import shutil
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
    for values in sorted(GOLDEN.glob("*.values.yaml")):
        helm("lint", "--strict", str(CHART), "--values", str(values))


# `helm template` output for each tests/cluster/golden/chart/<name>.values.yaml is kept in <name>.yaml;
# MILLRACE_UPDATE_GOLDEN=1 (make chart-golden) rewrites them. What Helm generates at random (the
# webhook's certificates, the signing key) reads as GENERATED.
GOLDEN = Path(__file__).parent / "golden" / "chart"
GENERATED = "<generated>"


def _normalised(docs: list[dict]) -> list[dict]:
    for doc in docs:
        if doc["kind"] == "Secret":
            doc["data"] = {key: GENERATED for key in doc.get("data", {})}
        for hook in doc.get("webhooks", []):
            hook["clientConfig"]["caBundle"] = GENERATED
    return docs


@pytest.mark.parametrize("values", sorted(p.name.removesuffix(".values.yaml") for p in GOLDEN.glob("*.values.yaml")))
def test_rendered_chart_matches_its_golden_file(helm, values: str) -> None:
    rendered = yaml.safe_dump_all(_normalised(_render(helm, "--values", str(GOLDEN / f"{values}.values.yaml"))),
                                  sort_keys=False, width=120)
    golden = GOLDEN / f"{values}.yaml"
    if os.environ.get("MILLRACE_UPDATE_GOLDEN") == "1":
        golden.write_text(rendered)
    assert golden.exists(), f"{golden} is missing: run `make chart-golden`"
    assert rendered == golden.read_text(), f"helm template with {values}.values.yaml differs from {golden.name}: " \
                                           "check the diff, then `make chart-golden`"


@pytest.mark.parametrize(("args", "message"), [
    (["--set", "operator.replica=2"], "additional properties 'replica' not allowed"),
    (["--set-string", "operator.replicas=two"], "got string, want integer"),
    (["--set", "webhook.failurePolicy=Sometimes"], "failurePolicy"),
    (["--set", "watch.namespaces={Team_A}"], "namespaces/0"),
    (["--set", "serviceMonitor.interval=often"], "interval"),
    (["--set", "signingkey.existingSecret=mine"], "additional properties 'signingkey' not allowed"),
])
def test_misspelt_or_mistyped_values_are_refused(helm, args: list[str], message: str) -> None:
    for command in (["template", RELEASE, str(CHART)], ["lint", str(CHART)]):
        proc = helm(*command, *args, check=False)
        assert proc.returncode != 0 and message in proc.stdout + proc.stderr, (command, args, proc.stdout, proc.stderr)


def test_every_default_value_is_described_by_the_schema() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    def walk(node: dict, props: dict, path: str) -> None:
        for key, value in node.items():
            assert key in props["properties"], f"{path}{key} is not in values.schema.json"
            if isinstance(value, dict) and "properties" in props["properties"][key]:
                walk(value, props["properties"][key], f"{path}{key}.")
    walk(values, schema, "")


def test_chart_crds_are_the_generated_crds() -> None:
    for name in ("flow.yaml", "flowrun.yaml"):
        assert filecmp.cmp(REPO / "crds" / name, CHART / "crds" / name, shallow=False), \
            f"charts/millrace/crds/{name} differs from crds/{name}: run `make crds`"


def test_namespaced_install_renders_roles_only_for_its_namespaces(helm) -> None:
    kinds = _kinds(_render(helm, "--set", "watch.namespaces={team-a}"))
    assert sorted((r["metadata"]["namespace"], r["metadata"]["name"]) for r in kinds["Role"]) == [
        ("ns1", "millrace"), ("ns1", LEASE), ("team-a", "millrace")]
    # Nothing cluster-wide: kopf does not scan namespaces or CRDs.
    assert "ClusterRole" not in kinds and "ClusterRoleBinding" not in kinds
    webhook = kinds["ValidatingWebhookConfiguration"][0]["webhooks"]
    selector = webhook[0]["namespaceSelector"]["matchExpressions"][0]
    assert selector["values"] == ["ns1", "team-a"]
    assert {w["clientConfig"]["service"]["path"] for w in webhook} == {"/validate-flow", "/validate-flowrun"}
    assert all(w["clientConfig"]["caBundle"] for w in webhook)
    args = kinds["Deployment"][0]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[:3] == ["operator", "--namespace=ns1", "--namespace=team-a"]


def test_cluster_wide_install_uses_one_cluster_role(helm) -> None:
    kinds = _kinds(_render(helm, "--set", "watch.allNamespaces=true"))
    assert [r["metadata"]["name"] for r in kinds["Role"]] == [LEASE]  # leader election, in its namespace only
    assert len(kinds["ClusterRole"]) == 1 and len(kinds["ClusterRoleBinding"]) == 1
    assert "namespaceSelector" not in kinds["ValidatingWebhookConfiguration"][0]["webhooks"][0]
    assert "--all-namespaces" in kinds["Deployment"][0]["spec"]["template"]["spec"]["containers"][0]["args"]


# Every (API group, resource, verb) the chart grants, the call in operator/millrace that needs
# it (a regular expression that must match the code) and a test whose behaviour makes that call.
# kopf's own calls: it lists and watches what handlers are registered for, and patches the
# objects it handles (finalizers, its progress annotations and status) and posts Events.
RULE_USES: dict[tuple[str, str, str], tuple[str, str]] = {
    ("millrace.dev", "flows", "get"): (r"def get_flow\(", "test_operator.py::test_a_flow_applied_with_kubectl_runs_its_steps_as_jobs"),
    ("millrace.dev", "flows", "list"): (r'@kopf\.on\.create\(GROUP, VERSION, "flows"\)', "test_operator.py::test_flows_report_ready_and_runs_show_their_start"),
    ("millrace.dev", "flows", "watch"): (r'@kopf\.on\.update\(GROUP, VERSION, "flows"', "test_operator.py::test_flows_report_ready_and_runs_show_their_start"),
    ("millrace.dev", "flows", "patch"): (r'@kopf\.on\.resume\(GROUP, VERSION, "flows"\)', "test_operator.py::test_flows_report_ready_and_runs_show_their_start"),
    ("millrace.dev", "flowruns", "get"): (r"def get_flowrun\(", "test_operator.py::test_a_flow_applied_with_kubectl_runs_its_steps_as_jobs"),
    ("millrace.dev", "flowruns", "list"): (r'@kopf\.on\.event\(GROUP, VERSION, "flowruns"', "test_operator.py::test_a_flow_applied_with_kubectl_runs_its_steps_as_jobs"),
    ("millrace.dev", "flowruns", "watch"): (r'@kopf\.on\.event\(GROUP, VERSION, "flowruns"', "test_operator.py::test_variables_resources_scripts_and_inner_flows_come_from_the_namespace"),
    ("millrace.dev", "flowruns", "create"): (r"create_namespaced_custom_object\(", "test_operator.py::test_variables_resources_scripts_and_inner_flows_come_from_the_namespace"),
    ("millrace.dev", "flowruns", "delete"): (r"delete_namespaced_custom_object\(GROUP, VERSION, namespace, FLOWRUNS", "test_schedules.py::test_a_schedule_starts_runs_named_by_fire_time_and_keeps_its_history"),
    ("millrace.dev", "flowruns", "patch"): (r"patch_namespaced_custom_object\(GROUP, VERSION, namespace, FLOWRUNS", "test_operator.py::test_cancelling_a_parent_cancels_its_inner_flow_run"),
    ("millrace.dev", "flows/status", "patch"): (r"patch_namespaced_custom_object_status\(GROUP, VERSION, namespace, FLOWS,", "test_operator.py::test_flows_report_ready_and_runs_show_their_start"),
    ("millrace.dev", "flowruns/status", "update"): (r"replace_namespaced_custom_object_status\(", "test_operator.py::test_a_flow_applied_with_kubectl_runs_its_steps_as_jobs"),
    ("millrace.dev", "flowruns/status", "patch"): (r"patch_namespaced_custom_object_status\(\s+GROUP, VERSION, namespace, FLOWRUNS", "test_operator.py::test_status_holds_user_state_and_results_json"),
    ("batch", "jobs", "get"): (r"read_namespaced_job\(", "test_operator.py::test_a_job_deleted_by_hand_fails_its_step_clearly"),
    # kopf lists before it watches.
    ("batch", "jobs", "list"): (r'@kopf\.on\.event\("batch", "v1", "jobs"', "test_operator.py::test_a_flow_applied_with_kubectl_runs_its_steps_as_jobs"),
    ("batch", "jobs", "watch"): (r'@kopf\.on\.event\("batch", "v1", "jobs"', "test_operator.py::test_a_flow_applied_with_kubectl_runs_its_steps_as_jobs"),
    ("batch", "jobs", "create"): (r"create_namespaced_job\b", "test_operator.py::test_a_flow_applied_with_kubectl_runs_its_steps_as_jobs"),
    ("batch", "jobs", "delete"): (r"delete_namespaced_job\(", "test_operator.py::test_cancelling_a_run_stops_its_jobs"),
    ("", "pods", "list"): (r"list_namespaced_pod\(", "test_operator.py::test_a_shared_volume_that_cannot_be_bound_fails_the_run_clearly"),
    ("", "pods/log", "get"): (r"read_namespaced_pod_log\(", "test_kubectl_plugin.py::test_logs_are_kept_with_the_report_after_the_pod_is_gone"),
    ("", "configmaps", "get"): (r"read_namespaced_config_map\(", "test_operator.py::test_a_large_result_is_kept_beside_the_status"),
    ("", "configmaps", "list"): (r"list_namespaced_config_map\(", "test_operator.py::test_a_flow_applied_with_kubectl_runs_its_steps_as_jobs"),
    ("", "configmaps", "watch"): (r'@kopf\.on\.event\("", "v1", "configmaps"', "test_operator.py::test_a_flow_applied_with_kubectl_runs_its_steps_as_jobs"),
    ("", "configmaps", "create"): (r"create_namespaced_config_map\b", "test_operator.py::test_a_flow_applied_with_kubectl_runs_its_steps_as_jobs"),
    ("", "configmaps", "update"): (r"replace_namespaced_config_map\(", "test_operator.py::test_the_temperature_watcher_keeps_its_state_across_runs"),
    ("", "secrets", "get"): (r"read_namespaced_secret\(", "test_trust_secrets.py::test_an_inner_flow_gets_secret_args_from_a_secret_it_owns"),
    ("", "secrets", "list"): (r"list_namespaced_secret\(", "test_operator.py::test_variables_resources_scripts_and_inner_flows_come_from_the_namespace"),
    # The secret variables' watch (secretwatch.py), which masks records without a list per record.
    ("", "secrets", "watch"): (r"stream\(self\.kube\.core\.list_namespaced_secret", "test_trust_secrets.py::test_no_object_of_the_run_and_no_operator_log_holds_a_secret_value"),
    ("", "secrets", "create"): (r"create_namespaced_secret\b", "test_operator.py::test_a_flow_applied_with_kubectl_runs_its_steps_as_jobs"),
    ("", "secrets", "update"): (r"replace_namespaced_secret\b", "test_trust_secrets.py::test_no_object_of_the_run_and_no_operator_log_holds_a_secret_value"),
    # The "Job created" (or refused) annotation on a step's Secret, which recovery reads.
    ("", "secrets", "patch"): (r"patch_namespaced_secret\(", "test_operator.py::test_a_flow_applied_with_kubectl_runs_its_steps_as_jobs"),
    ("", "persistentvolumeclaims", "get"): (r"read_namespaced_persistent_volume_claim\(", "test_operator.py::test_a_shared_volume_that_cannot_be_bound_fails_the_run_clearly"),
    ("", "persistentvolumeclaims", "create"): (r"create_namespaced_persistent_volume_claim\b", "test_operator.py::test_same_worker_steps_share_a_volume_that_ends_with_the_run"),
    ("", "persistentvolumeclaims", "delete"): (r"delete_namespaced_persistent_volume_claim\(", "test_operator.py::test_same_worker_steps_share_a_volume_that_ends_with_the_run"),
    ("", "events", "create"): (r"create_namespaced_event\b", "test_trust_secrets.py::test_no_object_of_the_run_and_no_operator_log_holds_a_secret_value"),
    # Leader election, in the release namespace only (the `<release>-leader` Role), get and update
    # limited to the one Lease.
    ("coordination.k8s.io", "leases", "get"): (r"read_namespaced_lease\(", "test_leader.py::test_killing_the_leader_mid_step_hands_over_and_the_step_runs_once"),
    ("coordination.k8s.io", "leases", "create"): (r"create_namespaced_lease\(", "test_leader.py::test_killing_the_leader_mid_step_hands_over_and_the_step_runs_once"),
    ("coordination.k8s.io", "leases", "update"): (r"replace_namespaced_lease\(", "test_leader.py::test_a_stopped_leader_frees_the_lease_for_the_other_at_once"),
}
ELECTION = {rule for rule in RULE_USES if rule[:2] == ("coordination.k8s.io", "leases")}
LEASE = "millrace-leader"


def _granted(role: dict) -> set[tuple[str, str, str]]:
    return {(group, resource, verb) for rule in role["rules"] for group in rule["apiGroups"]
            for resource in rule["resources"] for verb in rule["verbs"]}


def test_each_granted_rule_is_used_by_the_code_and_exercised_by_a_test(helm) -> None:
    code = "\n".join(p.read_text() for p in (REPO / "operator" / "millrace").rglob("*.py"))
    for install in (_kinds(_render(helm, "--set", "watch.namespaces={team-a}")), _kinds(_render(helm, "--set", "watch.allNamespaces=true"))):
        roles = install["Role"] + install.get("ClusterRole", [])
        election = [r for r in roles if r["metadata"]["name"] == LEASE]
        assert [r["metadata"].get("namespace") for r in election] == ["ns1"]
        assert _granted(election[0]) == ELECTION
        assert {rule.get("resourceNames") is None for rule in election[0]["rules"] if rule["verbs"] != ["create"]} == {False}
        for role in roles:
            if role is not election[0]:
                assert _granted(role) == set(RULE_USES) - ELECTION, role["metadata"]["name"]
    for rule, (call, test) in RULE_USES.items():
        assert re.search(call, code), f"{rule}: nothing in operator/millrace matches {call!r}"
        file, _, name = test.partition("::")
        assert re.search(rf"^def {name}\(", (REPO / "tests" / "cluster" / file).read_text(), re.M), f"{rule}: no test {test}"


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


def test_steps_python_cache_is_passed_to_the_operator_as_a_volume_source(helm) -> None:
    def env(*args: str) -> dict[str, str]:
        pod = _kinds(_render(helm, *args))["Deployment"][0]
        return {e["name"]: e.get("value") for e in pod["spec"]["template"]["spec"]["containers"][0]["env"]}

    source = {"persistentVolumeClaim": {"claimName": "python-packages"}}
    assert json.loads(env("--set-json", f"steps.pythonCache={json.dumps(source)}")["MILLRACE_PYTHON_CACHE_VOLUME"]) == source
    assert "MILLRACE_PYTHON_CACHE_VOLUME" not in env()


def _install(kube, helm, namespace: str, folder: Path, values: dict) -> None:
    # CRDs first, as installation.md says: a control plane kept from before a model change has older
    # ones, which the chart's CRD check refuses (Helm installs crds/ only where there are none).
    kube.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CHART / "crds"))
    values_file = folder / "values.yaml"
    values_file.write_text(json.dumps(values))
    helm("install", RELEASE, str(CHART), "--namespace", namespace, "--values", str(values_file))


def _local_command() -> list[str]:
    # The node agent runs the container's command on this machine: the venv's millrace.
    return [str(Path(sys.executable).parent / "millrace")]


@pytest.fixture
def installed(kube, helm, namespace, tmp_path):
    _install(kube, helm, namespace, tmp_path, {
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


# What the code no longer needs, and what it never did.
DENIED_HERE = [
    ("update", "flowruns"), ("update", "flows/status"),
    ("get", "flowruns/status"), ("list", "persistentvolumeclaims"), ("watch", "persistentvolumeclaims"),
    ("patch", "events"), ("create", "events.events.k8s.io"), ("get", "pods"), ("watch", "pods"),
    ("delete", "secrets"), ("create", "pods"), ("delete", "pods"), ("create", "pods/exec"),
    ("create", "deployments.apps"), ("create", "roles.rbac.authorization.k8s.io"),
    ("create", "rolebindings.rbac.authorization.k8s.io"), ("create", "serviceaccounts/token"),
    ("update", "flows"), ("delete", "flows"), ("patch", "jobs.batch"),
    ("update", "leases.coordination.k8s.io/another"), ("get", "leases.coordination.k8s.io/another"),
    ("delete", "leases.coordination.k8s.io/millrace-leader"), ("list", "leases.coordination.k8s.io"),
]
DENIED_CLUSTER = [
    ("get", "secrets", "-n", "kube-system"), ("list", "secrets", "--all-namespaces"),
    ("create", "jobs.batch", "-n", "default"), ("list", "flows", "--all-namespaces"),
    ("create", "leases.coordination.k8s.io", "-n", "default"),
    ("delete", "namespaces"), ("create", "namespaces"), ("list", "nodes"), ("list", "namespaces"),
    ("create", "clusterrolebindings.rbac.authorization.k8s.io"),
    ("update", "validatingwebhookconfigurations.admissionregistration.k8s.io"),
    ("watch", "customresourcedefinitions.apiextensions.k8s.io"),
    ("create", "customresourcedefinitions.apiextensions.k8s.io"),
    ("impersonate", "serviceaccounts"), ("escalate", "roles.rbac.authorization.k8s.io"),
]


def _resource(group: str, resource: str) -> str:
    """As `kubectl auth can-i` names it: flows.millrace.dev/status."""
    name, _, sub = resource.partition("/")
    full = f"{name}.{group}" if group else name
    return f"{full}/{sub}" if sub else full


def _can(kube, namespace: str, verb: str, resource: str, *scope: str) -> bool:
    what = resource.split("/")
    if what[0] == "leases.coordination.k8s.io":
        # Leases have no subresources: after the slash comes a name (kubectl's TYPE/NAME). The
        # operator's Lease when none is given, as get and update are granted for it only.
        named = resource if len(what) > 1 or verb in ("create", "list") else f"{resource}/{LEASE}"
        args = [verb, named]
    else:
        args = [verb, what[0]] + ([f"--subresource={what[1]}"] if len(what) > 1 else [])
    proc = kube.kubectl("auth", "can-i", *args, *(scope or ("-n", namespace)),
                        f"--as=system:serviceaccount:{namespace}:{SA}", check=False)
    assert proc.stdout.strip() in ("yes", "no"), proc.stderr
    return proc.stdout.strip() == "yes"


def test_service_account_can_do_what_the_operator_needs(kube, installed) -> None:
    missing = [rule for rule in RULE_USES if not _can(kube, installed, rule[2], _resource(rule[0], rule[1]))]
    assert missing == []


def test_service_account_can_do_nothing_more(kube, installed) -> None:
    granted = [rule for rule in DENIED_HERE + DENIED_CLUSTER if _can(kube, installed, *rule)]
    assert granted == []


def test_the_operator_the_chart_deploys_runs_a_flow_with_its_service_account(kube, helm, namespace, tmp_path) -> None:
    api = free_port()
    # Pods share this machine's network here: free ports, and the step API on loopback.
    # The webhook is off: the operator does not serve it yet.
    _install(kube, helm, namespace, tmp_path, {
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


def _previous_chart(folder: Path) -> Path:
    """The chart as its previous version shipped it: version 0.1.0, whose FlowRun CRD had no spec.timeoutS."""
    chart = folder / "previous"
    shutil.copytree(CHART, chart)
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    (chart / "Chart.yaml").write_text(yaml.safe_dump({**meta, "version": "0.1.0"}))
    crd_file = chart / "crds" / "flowrun.yaml"
    crd = yaml.safe_load(crd_file.read_text())
    del crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["timeoutS"]
    crd["metadata"]["annotations"]["millrace.dev/schema"] = "previous"
    crd_file.write_text(yaml.safe_dump(crd))
    # The previous chart had no CRD check; this one would refuse to be installed over its own CRDs.
    (chart / "templates" / "crd-check.yaml").unlink()
    return chart


def test_upgrade_from_the_previous_version_applies_its_crds_first(kube, helm, namespace, tmp_path) -> None:
    previous = _previous_chart(tmp_path)
    values = tmp_path / "values.yaml"
    values.write_text(json.dumps({"operator": {"replicas": 0, "command": _local_command()}, "webhook": {"enabled": False}}))
    # A cluster on the previous version: its CRDs (Helm would not replace CRDs that exist).
    kube.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(previous / "crds"))
    run = {"apiVersion": "millrace.dev/v1alpha1", "kind": "FlowRun", "metadata": {"name": "bounded"},
           "spec": {"flowRef": {"name": "absent"}, "timeoutS": 30}}
    try:
        helm("install", RELEASE, str(previous), "--namespace", namespace, "--values", str(values))
        pruned = kube.kubectl("apply", "--validate=warn", "-n", namespace, "-f", "-", input=json.dumps(run))
        assert 'unknown field "spec.timeoutS"' in pruned.stderr, pruned.stderr
        assert "timeoutS" not in kube.get("flowrun", "bounded", namespace)["spec"]  # pruned by the old schema

        refused = helm("upgrade", RELEASE, str(CHART), "--namespace", namespace, "--values", str(values), check=False)
        assert refused.returncode != 0
        assert "CRD flowruns.millrace.dev has schema previous" in refused.stderr, refused.stderr
        assert "kubectl apply --server-side --force-conflicts -f charts/millrace/crds/" in refused.stderr

        # The documented upgrade: the chart's CRDs, then the chart.
        kube.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CHART / "crds"))
        helm("upgrade", RELEASE, str(CHART), "--namespace", namespace, "--values", str(values))
        history = json.loads(helm("history", RELEASE, "--namespace", namespace, "-o", "json").stdout)
        assert [(h["chart"], h["status"]) for h in history][-1] == (f"millrace-{_chart_version()}", "deployed")
        kube.apply({**run, "metadata": {"name": "bounded-2"}}, namespace)
        assert kube.get("flowrun", "bounded-2", namespace)["spec"]["timeoutS"] == 30
        for name in ("flow.yaml", "flowrun.yaml"):
            want = yaml.safe_load((CHART / "crds" / name).read_text())
            live = kube.get("crd", want["metadata"]["name"])
            assert live["spec"]["versions"][0]["schema"] == want["spec"]["versions"][0]["schema"], name
    finally:
        kube.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CHART / "crds"))
        helm("uninstall", RELEASE, "--namespace", namespace, "--wait", check=False)


def _chart_version() -> str:
    return yaml.safe_load((CHART / "Chart.yaml").read_text())["version"]
