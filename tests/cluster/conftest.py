"""Fixtures for the cluster tests: a real Kubernetes control plane.

By default (``MILLRACE_CLUSTER=local``) the session starts the local control
plane of scripts/cluster/cluster.py -- etcd, kube-apiserver,
kube-controller-manager built from the Go module proxy, and the test node
agent that runs pods as local processes -- or reuses one that is already
running (``make cluster``).  It stops it at the end if a test session
started it and no other session still uses it, unless
``MILLRACE_KEEP_CLUSTER=1``.  If the binaries cannot be built or the control
plane does not start, every cluster test fails: nothing is skipped quietly.

Other targets, for machines with Docker or a cluster at hand:

* ``MILLRACE_CLUSTER=kubeconfig``: the cluster of ``$KUBECONFIG``;
* ``MILLRACE_CLUSTER=kind``: a kind cluster made by pytest-kind
  (``pip install -e '.[e2e]'``); skipped with a reason where Docker is absent.

Tests talk to the cluster the way users do (kubectl, the API), and read pod
logs through the API (``kubectl logs``), so the same tests run on any target.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import re
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


def load_cluster_script():
    """scripts/cluster/cluster.py as a module."""
    spec = importlib.util.spec_from_file_location("millrace_cluster_script",
                                                  REPO / "scripts" / "cluster" / "cluster.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


@dataclass
class Kube:
    """A handle on the cluster under test."""

    kubeconfig: str
    kubectl_bin: str
    target: str                      # local | kubeconfig | kind
    info: dict = field(default_factory=dict)

    def env(self) -> dict:
        return {**os.environ, "KUBECONFIG": self.kubeconfig}

    def kubectl(self, *args: str, input: str | None = None, check: bool = True,
                timeout: float = 60) -> subprocess.CompletedProcess:
        proc = subprocess.run([self.kubectl_bin, *args], input=input, capture_output=True,
                              text=True, env=self.env(), timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}):\n"
                                 f"{proc.stdout}\n{proc.stderr}")
        return proc

    def apply(self, manifest, namespace: str | None = None, check: bool = True):
        if not isinstance(manifest, str):
            # JSON, not YAML: no surprises with values such as y or no.
            if isinstance(manifest, list):
                manifest = {"apiVersion": "v1", "kind": "List", "items": manifest}
            manifest = json.dumps(manifest)
        args = ["apply", "-f", "-"] + (["-n", namespace] if namespace else [])
        return self.kubectl(*args, input=manifest, check=check)

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict | None:
        args = ["get", kind, name, "-o", "json"] + (["-n", namespace] if namespace else [])
        proc = self.kubectl(*args, check=False)
        if proc.returncode != 0:
            if "NotFound" in proc.stderr or "not found" in proc.stderr:
                return None
            raise AssertionError(f"kubectl get {kind} {name}: {proc.stderr}")
        return json.loads(proc.stdout)

    def list(self, kind: str, namespace: str, selector: str | None = None) -> list[dict]:
        args = ["get", kind, "-n", namespace, "-o", "json"] + (["-l", selector] if selector else [])
        return json.loads(self.kubectl(*args).stdout)["items"]

    def wait_for(self, fn, timeout: float = 60, what: str = "condition", interval: float = 0.2):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = fn()
            if last:
                return last
            time.sleep(interval)
        raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")

    def job_condition(self, namespace: str, job: str, timeout: float = 90) -> str:
        """Wait until the Job is Complete or Failed; return which."""
        def done():
            j = self.get("job", job, namespace) or {}
            for c in (j.get("status") or {}).get("conditions") or []:
                if c["type"] in ("Complete", "Failed") and c["status"] == "True":
                    return c["type"]
            return None
        return self.wait_for(done, timeout, f"job {namespace}/{job} to finish")

    def pod_phase(self, namespace: str, pod: str, phases=("Succeeded", "Failed"),
                  timeout: float = 60) -> dict:
        def done():
            p = self.get("pod", pod, namespace)
            return p if p and (p.get("status") or {}).get("phase") in phases else None
        return self.wait_for(done, timeout, f"pod {namespace}/{pod} to reach {phases}")

    def log_file(self, namespace: str, pod: str, container: str) -> Path:
        """The node agent's log file of a container (local target only)."""
        if self.target != "local":
            pytest.skip("container log files exist only under the local node agent")
        pods = Path(self.info["node_dir"]) / "pods"
        found = sorted(pods.glob(f"{namespace}_{pod}_*/logs/{container}.log"), key=lambda p: p.stat().st_mtime)
        if not found:
            raise AssertionError(f"no log file for {namespace}/{pod}/{container} under {pods}")
        return found[-1]

    def logs(self, namespace: str, target: str, container: str | None = None) -> str:
        args = ["logs", "-n", namespace, target] + (["-c", container] if container else [])
        return self.kubectl(*args).stdout


def docker_unavailable() -> str | None:
    """Why Docker cannot be used here, or None when it can."""
    if shutil.which("docker") is None:
        return "kind needs Docker, which this machine does not have"
    try:
        proc = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"],
                              capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"kind needs Docker, and `docker info` failed: {e}"
    if proc.returncode != 0:
        return ("kind needs Docker: the docker client is installed but no Docker daemon "
                "answers on this machine")
    return None


def _kubectl_for(bin_dir: str | None) -> str:
    if bin_dir and os.access(Path(bin_dir) / "kubectl", os.X_OK):
        return str(Path(bin_dir) / "kubectl")  # same version as the apiserver
    venv_kubectl = Path(sys.executable).parent / "kubectl"
    if venv_kubectl.exists():
        return str(venv_kubectl)
    found = shutil.which("kubectl")
    if not found:
        pytest.fail("no kubectl found", pytrace=False)
    return found


@pytest.fixture(scope="session")
def kube(request):
    target = os.environ.get("MILLRACE_CLUSTER", "local")
    if target == "local":
        cluster = load_cluster_script()
        t0 = time.monotonic()
        try:
            info = cluster.attach(build=True)
        except Exception as e:  # ClusterError, build failures: fail loudly
            pytest.fail(f"the local Kubernetes control plane did not start: {e}\n"
                        f"(logs in {cluster.run_dir() / 'logs'}; build with `make cluster-binaries`)",
                        pytrace=False)
        info["start_seconds"] = round(time.monotonic() - t0, 2)
        k = Kube(info["kubeconfig"], _kubectl_for(info["bin_dir"]), "local", info)
        try:
            yield k
        finally:
            # Stops it if this session started it and no other session uses it.
            cluster.detach(keep=bool(os.environ.get("MILLRACE_KEEP_CLUSTER")))
    elif target == "kubeconfig":
        cfg = os.environ.get("KUBECONFIG")
        if not cfg:
            pytest.fail("MILLRACE_CLUSTER=kubeconfig needs KUBECONFIG", pytrace=False)
        yield Kube(cfg, _kubectl_for(None), "kubeconfig")
    elif target == "kind":
        why = docker_unavailable()
        if why:
            pytest.skip(f"MILLRACE_CLUSTER=kind: {why}")
        pytest_kind = pytest.importorskip("pytest_kind", reason="pip install -e '.[e2e]' for kind")
        kc = pytest_kind.KindCluster("millrace-tests")
        kc.create()
        try:
            yield Kube(str(kc.kubeconfig_path), _kubectl_for(None), "kind")
        finally:
            if not os.environ.get("MILLRACE_KEEP_CLUSTER"):
                kc.delete()
    else:
        pytest.fail(f"unknown MILLRACE_CLUSTER={target!r} (local, kubeconfig or kind)", pytrace=False)


@pytest.fixture(scope="session")
def kubeconfig(kube) -> str:
    """Path of an admin kubeconfig for the cluster under test."""
    return kube.kubeconfig


@contextmanager
def fresh_namespace(kube: Kube, base: str) -> Iterator[str]:
    """A new namespace named after `base`, deleted afterwards (without waiting)."""
    base = re.sub(r"[^a-z0-9-]+", "-", base.lower()).strip("-")[:40].strip("-")
    name = f"{base}-{uuid.uuid4().hex[:5]}"
    kube.kubectl("create", "namespace", name)
    kube.wait_for(lambda: kube.get("serviceaccount", "default", name), 30,
                  f"the default ServiceAccount of {name}")
    try:
        yield name
    finally:
        kube.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def namespace(kube, request):
    """A fresh namespace per test."""
    with fresh_namespace(kube, request.node.name) as name:
        yield name


def job_manifest(name: str, command: list[str], backoff_limit: int = 0, **pod_spec) -> dict:
    """A Job running one container with `command` (the image is ignored by the node agent)."""
    container = {"name": "main", "image": "python:3.12-slim", "command": command}
    container.update(pod_spec.pop("container", {}))
    return {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
        "spec": {"backoffLimit": backoff_limit, "template": {"spec": {
            "restartPolicy": "Never", "containers": [container], **pod_spec}}},
    }


def pod_manifest(name: str, command: list[str], restart: str = "Never", **spec) -> dict:
    container = {"name": "main", "image": "python:3.12-slim", "command": command}
    container.update(spec.pop("container", {}))
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"restartPolicy": restart, "containers": [container], **spec}}


@pytest.fixture(scope="session")
def helm(kube):
    bin_dir = kube.info.get("bin_dir")
    path = Path(bin_dir) / "helm" if bin_dir else None
    found = str(path) if path and os.access(path, os.X_OK) else shutil.which("helm")
    if not found:
        pytest.fail("no helm binary: `make cluster-binaries` builds it", pytrace=False)

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run([found, *args], capture_output=True, text=True, env=kube.env(), timeout=120)
        if check and proc.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
        return proc
    return run


def free_port() -> int:
    """A port nothing listens on now, on loopback (pods share this machine's network here)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def service_account_kubeconfig(kube: Any, namespace: str, account: str, path: Path) -> Path:
    """A kubeconfig that acts as `account`, with a token from the TokenRequest API."""
    admin = yaml.safe_load(Path(kube.kubeconfig).read_text())
    token = kube.kubectl("create", "token", account, "-n", namespace, "--duration=2h").stdout.strip()
    cluster = admin["clusters"][0]
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "clusters": [cluster],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [{"name": account, "context": {"cluster": cluster["name"], "user": account, "namespace": namespace}}],
        "current-context": account,
    }))
    return path


class Operator:
    """`millrace operator` as a process watching one namespace, with exactly the
    ServiceAccount and RBAC that the Helm chart grants (installed with 0 replicas).
    It plays one pod: started again, it has the same name, so it takes its Lease back at once."""

    def __init__(self, kube: Any, namespace: str, log: Path, kubeconfig: Path) -> None:
        self.kube = kube
        self.namespace = namespace
        self.log = log
        self.kubeconfig = kubeconfig
        self.port = free_port()
        self.pod_name = f"operator-{uuid.uuid4().hex[:6]}"
        self.process: subprocess.Popen[bytes] | None = None
        self.args: list[str] = []  # more `millrace operator` options

    def start(self, **settings: str) -> None:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "MILLRACE_NAMESPACE": self.namespace,
               "MILLRACE_POD_NAME": self.pod_name, "MILLRACE_SIGNING_KEY": "dGVzdC1zaWduaW5nLWtleS1mb3ItdGhlLW9wZXJhdG9y",
               **settings}
        self.metrics_port = free_port()
        command = [sys.executable, "-m", "millrace.cli.main", "operator", "--namespace", self.namespace,
                   "--api-host", "127.0.0.1", "--api-port", str(self.port), "--metrics-port", str(self.metrics_port),
                   "--liveness", f"http://127.0.0.1:{free_port()}/healthz", *self.args]
        self.process = subprocess.Popen(command, env=env, stdout=self.log.open("ab"), stderr=subprocess.STDOUT,
                                        start_new_session=True)

    def kill(self) -> None:
        """Stop at once, as a crash would: no cleanup."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


def release_runs(kube: Any, op: Operator) -> None:
    """Delete the namespace's runs and flows while the operator runs (started again if a test
    stopped it): its `millrace.dev/operator` finalizer would otherwise keep them, and with them
    the namespace, in Terminating for good."""
    if op.process is None or op.process.poll() is not None:
        op.start()
    kube.kubectl("delete", "flowruns,flows", "--all", "-n", op.namespace, "--timeout=120s", check=False, timeout=180)


@contextmanager
def installed_operator(kube: Any, helm: Any, namespace: str, workdir: Path,
                       chart_values: dict[str, Any] | None = None) -> Iterator[Operator]:
    """The chart installed in `namespace` with 0 replicas (and `chart_values`) and `millrace operator`
    run here in its place."""
    kube.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    values = workdir / "values.json"
    values.write_text(json.dumps({"operator": {"replicas": 0}, "webhook": {"enabled": False}, **(chart_values or {})}))
    helm("install", "millrace", str(REPO / "charts" / "millrace"), "--namespace", namespace, "--values", str(values))
    kubeconfig = service_account_kubeconfig(kube, namespace, "millrace", workdir / "operator.kubeconfig")
    op = Operator(kube, namespace, workdir / "operator.log", kubeconfig)
    op.start()
    try:
        yield op
    finally:
        release_runs(kube, op)
        op.stop()
        helm("uninstall", "millrace", "--namespace", namespace, check=False)
        print((workdir / "operator.log").read_text(errors="replace")[-5000:])


def millrace_cli(kube: Any, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **kube.env()}
    return subprocess.run([str(Path(sys.executable).parent / "kubectl-millrace"), *args], env=env,
                          capture_output=True, text=True, timeout=60)
