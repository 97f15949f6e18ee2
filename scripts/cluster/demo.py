#!/usr/bin/env python3
"""The operator on this machine in one command (`make cluster-demo`; `make cluster-demo-down` stops it).

    demo.py up     start the local control plane (scripts/cluster/cluster.py), install the
                   chart with helm as a user would, apply examples/hello-flow.yaml, run it
                   with `kubectl millrace run --follow` (its steps shown live until it ends)
    demo.py down   uninstall the release, delete its namespace, stop the control plane

On this control plane Service names do not resolve (no cluster DNS; pods share this
machine's network, docs/testing.md), so the chart is given loopback URLs for everything
other pods or the apiserver call: the step API, the validating webhook, Flow webhooks,
each on a port free on this machine. The operator pod's command is this virtual
environment's `millrace`: the node agent runs it as a process here, as any pod.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "millrace"
FLOW = REPO / "examples" / "hello-flow.yaml"
NAMESPACE = "millrace-demo"
RELEASE = "millrace"


def chart_values(command: list[str], ports: dict[str, int]) -> dict[str, Any]:
    """The chart's values for this machine: loopback URLs on the given ports."""
    return {
        "operator": {
            "command": command,
            "apiUrl": f"http://127.0.0.1:{ports['api']}",
            "hooksUrl": f"http://127.0.0.1:{ports['hooks']}",
            "ports": ports,
        },
        "webhook": {"url": f"https://127.0.0.1:{ports['webhook']}", "certIPs": ["127.0.0.1"]},
    }


def _cluster_module() -> Any:
    spec = importlib.util.spec_from_file_location("millrace_cluster_script", Path(__file__).with_name("cluster.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


class Tools:
    def __init__(self, info: dict[str, Any]) -> None:
        self.env = {"KUBECONFIG": info["kubeconfig"], "PATH": f"{info['bin_dir']}:{Path(sys.executable).parent}:/usr/bin:/bin"}
        self.bin = Path(info["bin_dir"])

    def run(self, tool: str, *args: str, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([str(self.bin / tool), *args], env=self.env, input=stdin, capture_output=True, text=True,
                              timeout=300)
        if check and proc.returncode != 0:
            raise SystemExit(f"{tool} {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}")
        return proc

    def kubectl(self, *args: str, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return self.run("kubectl", *args, check=check, stdin=stdin)


def up(keep: bool, timeout: float) -> int:
    cluster = _cluster_module()
    print("Starting the local control plane (scripts/cluster/cluster.py up) ...", flush=True)
    tools = Tools(cluster.up(keep=keep))
    print(f"  KUBECONFIG={tools.env['KUBECONFIG']}")
    # CRDs first, as docs/installation.md says for upgrades: Helm installs crds/ only where there are none.
    tools.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CHART / "crds"))
    deadline = time.monotonic() + timeout
    # A namespace deleted by the last `demo.py down` may still be going (the control plane stopped meanwhile).
    while "Terminating" in tools.kubectl("get", "namespace", NAMESPACE, "-o", "jsonpath={.status.phase}", check=False).stdout:
        if time.monotonic() > deadline:
            raise SystemExit(f"namespace {NAMESPACE} is still being deleted after {timeout:.0f}s")
        time.sleep(1)
    ports = {name: _free_port() for name in ("api", "webhook", "health", "metrics", "hooks")}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as values:
        json.dump(chart_values([str(Path(sys.executable).parent / "millrace")], ports), values)
    print(f"Installing the chart: helm upgrade --install {RELEASE} charts/millrace --namespace {NAMESPACE} ...", flush=True)
    tools.run("helm", "upgrade", "--install", RELEASE, str(CHART), "--namespace", NAMESPACE, "--create-namespace",
              "--values", values.name)
    Path(values.name).unlink()
    print("Waiting for the operator to serve its webhook and step API, then applying examples/hello-flow.yaml ...",
          flush=True)
    # The webhook (failurePolicy Fail) refuses writes until the new operator pod leads and listens;
    # pods share this machine's network here, so its ports are this machine's.
    while not all(_listening(ports[name]) for name in ("webhook", "api")):
        if time.monotonic() > deadline:
            raise SystemExit(f"the operator did not listen on 127.0.0.1:{ports['webhook']} in {timeout:.0f}s: "
                             f"kubectl logs -n {NAMESPACE} deploy/{RELEASE}")
        time.sleep(1)
    tools.kubectl("apply", "-n", NAMESPACE, "-f", str(FLOW))
    print("Running it: kubectl millrace run hello-flow --arg name=Ada --arg times=2 --follow", flush=True)
    plugin = Path(sys.executable).parent / "kubectl-millrace"
    try:
        # The plugin's own live view: a table redrawn in place on a terminal, a line per change otherwise.
        followed = subprocess.run([str(plugin), "run", "hello-flow", "-n", NAMESPACE, "--arg", "name=Ada", "--arg", "times=2",
                                   "--follow"], env=tools.env, timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        raise SystemExit(f"the run did not end in {timeout:.0f}s: kubectl millrace get -n {NAMESPACE}") from None
    run = newest_run(json.loads(tools.kubectl("get", "flowruns", "-n", NAMESPACE, "-o", "json").stdout))
    print(f"""
Go on from a shell:
  eval "$({sys.executable} scripts/cluster/cluster.py env)"; export PATH="{Path(sys.executable).parent}:$PATH"
  kubectl millrace get -n {NAMESPACE}
  kubectl millrace describe {run} -n {NAMESPACE}
  kubectl millrace logs {run} -n {NAMESPACE}
  kubectl millrace run hello-flow -n {NAMESPACE} --arg name=Grace --follow
  kubectl millrace resume RUN -n {NAMESPACE} --payload '{{}}'    # a run waiting for an approval
  kubectl millrace cancel RUN -n {NAMESPACE}
  kubectl get flowruns -n {NAMESPACE}; kubectl describe flowrun {run} -n {NAMESPACE}   # the same with kubectl alone
  (docs/kubectl.md has every kubectl millrace command)
  curl -s http://127.0.0.1:{ports['metrics']}/metrics | grep ^millrace_
Stop it: make cluster-demo-down (the release, its namespace and the control plane).""")
    return followed.returncode


def newest_run(listed: dict[str, Any]) -> str:
    """The name of the most recently created FlowRun of a `kubectl get flowruns -o json` list."""
    items = sorted(listed.get("items") or [], key=lambda obj: obj["metadata"]["creationTimestamp"])
    return str(items[-1]["metadata"]["name"]) if items else "RUN"


def down() -> int:
    cluster = _cluster_module()
    if cluster.load_state().get("ports") and cluster.is_up():
        tools = Tools(cluster.info())
        tools.run("helm", "uninstall", RELEASE, "--namespace", NAMESPACE, "--wait", check=False)
        tools.kubectl("delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=false", check=False)
        print(f"Release {RELEASE} uninstalled, namespace {NAMESPACE} deleted.")
    cluster.down()
    print("Control plane stopped (its state is kept: `make cluster-purge` deletes it).")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("up")
    start.add_argument("--no-keep", action="store_true",
                       help="leave the control plane to whoever started it (a test session stops it when it ends)")
    start.add_argument("--timeout", type=float, default=300, help="seconds to wait for the operator and for the run")
    sub.add_parser("down")
    args = parser.parse_args(argv)
    return up(keep=not args.no_keep, timeout=args.timeout) if args.command == "up" else down()


if __name__ == "__main__":
    sys.exit(main())
