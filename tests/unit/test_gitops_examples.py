"""examples/gitops: the Argo CD and Flux manifests point at what the repository holds."""

from __future__ import annotations

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
GITOPS = REPO / "examples" / "gitops"


def _docs(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def test_argocd_applications_install_the_chart_and_sync_the_flows_folder() -> None:
    chart, flows = _docs(GITOPS / "argocd" / "millrace.yaml")[0], _docs(GITOPS / "argocd" / "flows.yaml")[0]
    assert chart["spec"]["source"]["path"] == "charts/millrace"
    assert flows["spec"]["source"]["path"] == "examples/gitops/flows"
    assert chart["spec"]["destination"]["namespace"] == flows["spec"]["destination"]["namespace"] == "flows"
    for app in (chart, flows):
        assert (REPO / app["spec"]["source"]["path"]).is_dir()
    # The chart's values there are values the chart's schema knows (helm would refuse others).
    schema = yaml.safe_load((REPO / "charts" / "millrace" / "values.schema.json").read_text())
    assert set(chart["spec"]["source"]["helm"]["valuesObject"]) <= set(schema["properties"])


def test_flux_release_and_kustomization_read_the_same_repository() -> None:
    source = _docs(GITOPS / "flux" / "source.yaml")[0]
    release, flows = _docs(GITOPS / "flux" / "millrace.yaml")[0], _docs(GITOPS / "flux" / "flows.yaml")[0]
    assert release["spec"]["chart"]["spec"]["sourceRef"]["name"] == flows["spec"]["sourceRef"]["name"] == \
        source["metadata"]["name"]
    assert (REPO / release["spec"]["chart"]["spec"]["chart"]).is_dir()
    assert (REPO / flows["spec"]["path"]).is_dir()
    assert release["spec"]["targetNamespace"] == flows["spec"]["targetNamespace"] == "flows"
    assert release["spec"]["upgrade"]["crds"] == "CreateReplace"  # Helm alone never upgrades crds/


def test_argocd_health_checks_are_keyed_by_group_and_kind() -> None:
    kustomization = _docs(GITOPS / "argocd" / "health" / "kustomization.yaml")[0]
    files = dict(entry.split("=") for entry in kustomization["configMapGenerator"][0]["files"])
    assert files == {"resource.customizations.health.millrace.dev_Flow": "flow.lua",
                     "resource.customizations.health.millrace.dev_FlowRun": "flowrun.lua"}
    assert all((GITOPS / "argocd" / "health" / name).exists() for name in files.values())


def test_the_flows_folder_holds_only_flows() -> None:
    docs = [doc for path in sorted((GITOPS / "flows").glob("*.yaml")) for doc in _docs(path)]
    assert len(docs) >= 3 and {(d["apiVersion"], d["kind"]) for d in docs} == {("millrace.dev/v1alpha1", "Flow")}
