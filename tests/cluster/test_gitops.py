"""examples/gitops against the real apiserver: the Flows folder as a GitOps tool applies it, and the
Argo CD health checks as kustomize builds them into argocd-cm."""

from __future__ import annotations

import yaml

from .test_crds import REPO, crds  # noqa: F401 - the fixture

import pytest

pytestmark = pytest.mark.cluster

GITOPS = REPO / "examples" / "gitops"


def test_the_flows_folder_applies_against_the_crds(kube, crds, namespace) -> None:
    proc = kube.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", str(GITOPS / "flows"), "-o", "yaml")
    applied = [item for item in yaml.safe_load(proc.stdout)["items"]]
    assert sorted(item["metadata"]["name"] for item in applied) == ["daily-report", "nightly-cleanup", "weekly-report"]
    assert "unknown field" not in proc.stderr, proc.stderr  # nothing pruned by the schema


def test_the_health_checks_build_into_argocd_cm(kube) -> None:
    built = yaml.safe_load(kube.kubectl("kustomize", str(GITOPS / "argocd" / "health")).stdout)
    assert (built["kind"], built["metadata"]["name"], built["metadata"]["namespace"]) == ("ConfigMap", "argocd-cm", "argocd")
    assert built["data"] == {
        "resource.customizations.health.millrace.dev_Flow": (GITOPS / "argocd" / "health" / "flow.lua").read_text(),
        "resource.customizations.health.millrace.dev_FlowRun": (GITOPS / "argocd" / "health" / "flowrun.lua").read_text(),
    }
