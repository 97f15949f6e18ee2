"""`make cluster-demo` run as a user runs it, without a terminal: the chart installed with helm and
loopback URLs, the example flow applied, a run shown until it succeeds, then the way on and out."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]
NAMESPACE = "millrace-demo"


def test_the_demo_installs_the_chart_and_shows_a_run_to_its_end(kube: Any, helm: Any) -> None:
    if kube.target != "local":
        pytest.skip("the demo starts the local control plane")
    # --no-keep: the control plane is this test session's, which stops it when it ends.
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "cluster" / "demo.py"), "up", "--no-keep", "--timeout", "240"],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600, env={**os.environ})
    try:
        out = proc.stdout
        assert proc.returncode == 0, out
        assert "helm upgrade --install millrace charts/millrace --namespace millrace-demo" in out
        # The plugin's live view without a terminal: a line per change.
        assert "kubectl millrace run hello-flow --arg name=Ada --arg times=2 --follow" in out
        created = next(line for line in out.splitlines() if line.startswith("flowrun/hello-flow-") and line.endswith(" created"))
        run = created.split()[0].removeprefix("flowrun/")
        for step in ("greet", "shout", "size", "summary"):
            assert f"{step} succeeded" in out, out
        assert kube.get("flowrun", run, NAMESPACE)["status"]["phase"] == "Succeeded"
        assert f"kubectl millrace describe {run} -n millrace-demo" in out  # the way on names the run shown
        assert "kubectl millrace resume RUN -n millrace-demo" in out and "make cluster-demo-down" in out
        deployment = kube.get("deployment", "millrace", NAMESPACE)
        args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        assert any(a.startswith("--api-url=http://127.0.0.1:") for a in args), args
        webhook = kube.get("validatingwebhookconfiguration", f"millrace-{NAMESPACE}")
        assert webhook["webhooks"][0]["clientConfig"]["url"].startswith("https://127.0.0.1:")
        # The webhook the demo installed answers: a run with a traceparent that is not one is refused.
        refused = kube.apply({"apiVersion": "millrace.dev/v1alpha1", "kind": "FlowRun",
                              "metadata": {"name": "bad-trace", "annotations": {"millrace.dev/traceparent": "trace-me"}},
                              "spec": {"flowRef": {"name": "hello-flow"}, "args": {"name": "Ada"}}}, NAMESPACE, check=False)
        assert refused.returncode != 0 and "metadata.annotations[millrace.dev/traceparent]" in refused.stderr, refused.stderr
    finally:
        helm("uninstall", "millrace", "--namespace", NAMESPACE, "--wait", check=False)
        kube.kubectl("delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=false", check=False)
