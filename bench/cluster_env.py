"""The cluster benchmarks' surroundings: the local control plane, a fresh
namespace, the operator as a subprocess, and the apiserver's request counter.

The control plane is started by the module the cluster tests use
(scripts/cluster/cluster.py), attached like a test session: a running one is
reused, one started here is stopped at the end unless another session still
uses it. By default it is a control plane of the benchmarks' own, in
.millrace/bench-cluster: the apiserver's request counter is only readable
when no test session shares the apiserver (set MILLRACE_CLUSTER_DIR to use
another, e.g. .millrace/cluster for the tests' one).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import runpy
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

from common import REPO
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

sys.path.insert(0, str(REPO / "tests" / "cluster"))
import webhook_tls  # noqa: E402 (the tests' loopback TLS webhook set-up, shared)

METRIC = re.compile(r'^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$')
LABEL = re.compile(r'(\w+)="([^"]*)"')


def _cluster_script() -> SimpleNamespace:
    """scripts/cluster/cluster.py, the module the test fixtures start the control plane with."""
    return SimpleNamespace(**runpy.run_path(str(REPO / "scripts" / "cluster" / "cluster.py"), run_name="millrace_cluster_script"))


@dataclass
class Cluster:
    kubeconfig: str
    kubectl: str
    api: client.ApiClient

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": self.kubeconfig}

    def run_kubectl(self, *args: str, timeout: float = 60) -> str:
        proc = subprocess.run([self.kubectl, *args], capture_output=True, text=True, env=self.env, timeout=timeout)
        if proc.returncode:
            raise RuntimeError(f"kubectl {' '.join(args)}: {proc.stderr.strip()}")
        return proc.stdout

    def request_counts(self) -> Counter[tuple[str, str]]:
        """apiserver_request_total by (verb, resource[/subresource]), resource requests only.

        The counter has no user-agent label, so it cannot single out the
        operator: callers compare runs against baselines and an idle period."""
        text = self.run_kubectl("get", "--raw", "/metrics")
        counts: Counter[tuple[str, str]] = Counter()
        for line in text.splitlines():
            match = METRIC.match(line)
            if not match:
                continue
            labels = dict(LABEL.findall(match["labels"]))
            if not labels.get("resource"):
                continue  # /metrics, /readyz and other non-resource paths: the bench's own probes
            resource = labels["resource"] + (f"/{labels['subresource']}" if labels.get("subresource") else "")
            counts[(labels["verb"], resource)] += int(float(match["value"]))
        return counts

    def webhook_seconds(self) -> tuple[float, int]:
        """Total seconds and number of the apiserver's calls to the millrace admission webhooks so far."""
        total, calls = 0.0, 0
        for line in self.run_kubectl("get", "--raw", "/metrics").splitlines():
            name = line.split("{", 1)[0]
            if name.startswith("apiserver_admission_webhook_admission_duration_seconds") and '.millrace.dev"' in line:
                value = float(line.rsplit(" ", 1)[1])
                if name.endswith("_sum"):
                    total += value
                elif name.endswith("_count"):
                    calls += int(value)
        return total, calls


BENCH_CLUSTER_DIR = REPO / ".millrace" / "bench-cluster"


@contextlib.contextmanager
def cluster() -> Iterator[Cluster]:
    """The local control plane with the CRDs applied."""
    # Absolute: the node agent lays out pod folders and symlinks under it.
    os.environ["MILLRACE_CLUSTER_DIR"] = str(Path(os.environ.get("MILLRACE_CLUSTER_DIR") or BENCH_CLUSTER_DIR).resolve())
    script = _cluster_script()
    info = script.attach(build=True)
    try:
        kubectl = str(Path(info["bin_dir"]) / "kubectl")
        api = config.new_client_from_config(config_file=info["kubeconfig"])
        found = Cluster(info["kubeconfig"], kubectl, api)
        apply_crds(found)
        yield found
    finally:
        script.detach(keep=bool(os.environ.get("MILLRACE_KEEP_CLUSTER")))


@contextlib.contextmanager
def namespace(kube: Cluster, prefix: str, cleanup_timeout: float = 180) -> Iterator[str]:
    """A fresh namespace, deleted afterwards; waits (bounded) until it is gone,
    so the garbage collection of one benchmark does not slow the next."""
    core = client.CoreV1Api(kube.api)
    name = f"{prefix}-{uuid.uuid4().hex[:5]}"
    core.create_namespace({"metadata": {"name": name, "labels": {"millrace.dev/bench": "true"}}})
    try:
        wait(lambda: _exists(lambda: core.read_namespaced_service_account("default", name)), 30, "default ServiceAccount")
        yield name
    finally:
        delete_namespace(kube, name, cleanup_timeout)


def delete_namespace(kube: Cluster, name: str, timeout: float = 180) -> None:
    """Delete and wait (bounded) until it is gone; nothing if it is gone already."""
    core = client.CoreV1Api(kube.api)
    with contextlib.suppress(ApiException):
        core.delete_namespace(name)
    with contextlib.suppress(TimeoutError):
        wait(lambda: not _exists(lambda: core.read_namespace(name)), timeout, f"namespace {name} deleted")


def _established(kube: Cluster) -> list[str]:
    """The millrace CRDs that are not Established yet."""
    crds = json.loads(kube.run_kubectl("get", "-f", str(REPO / "crds"), "-o", "json"))["items"]
    return [crd["metadata"]["name"] for crd in crds
            if not any(c["type"] == "Established" and c["status"] == "True"
                       for c in (crd.get("status") or {}).get("conditions") or [])]


def apply_crds(kube: Cluster) -> None:
    """Apply the CRDs and wait until they are Established.

    A CRD created less than about 5 s before its apiserver stopped can stay
    at Established=False ("Installing") after every later start: the
    establishing controller does not look at it again, and discovery never
    lists it. Such a CRD is deleted and created again."""
    kube.run_kubectl("apply", "-f", str(REPO / "crds"))
    with contextlib.suppress(TimeoutError):
        wait(lambda: not _established(kube), 20, "the CRDs to be Established")
        return
    for name in _established(kube):
        kube.run_kubectl("delete", "crd", name, "--wait=true", timeout=120)
    kube.run_kubectl("apply", "-f", str(REPO / "crds"))
    wait(lambda: not _established(kube), 60, "the CRDs to be Established")


def _exists(read) -> bool:
    try:
        read()
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def progress(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def wait(predicate, timeout: float, what: str, interval: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Operator:
    """`millrace operator` for one namespace, as the cluster tests start it."""

    def __init__(self, kube: Cluster, ns: str, log: Path, args: tuple[str, ...] = ()) -> None:
        env = {**kube.env, "MILLRACE_NAMESPACE": ns, "MILLRACE_LOG_LEVEL": "WARNING",
               "MILLRACE_SIGNING_KEY": base64.b64encode(secrets.token_bytes(32)).decode()}
        command = [sys.executable, "-m", "millrace.cli.main", "operator", "--namespace", ns,
                   "--api-host", "127.0.0.1", "--api-port", str(_free_port()),
                   "--liveness", f"http://127.0.0.1:{_free_port()}/healthz", *args]
        self.log = log
        self.process = subprocess.Popen(command, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT,
                                        start_new_session=True)

    def memory_kb(self, field: str) -> int:
        """VmHWM (peak resident set) or VmRSS of the operator process, in kB."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
        raise RuntimeError(f"no {field} for pid {self.process.pid}")

    def cpu_seconds(self) -> float:
        """User + system CPU time the operator process has used so far."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"the operator exited ({self.process.returncode}): {self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


@contextlib.contextmanager
def operator(kube: Cluster, ns: str, log: Path, args: tuple[str, ...] = ()) -> Iterator[Operator]:
    op = Operator(kube, ns, log, args)
    try:
        yield op
    finally:
        op.stop()


@contextlib.contextmanager
def webhook_operator(kube: Cluster, ns: str, folder: Path) -> Iterator[Operator]:
    """The operator serving its validating webhook with TLS on 127.0.0.1, and a
    ValidatingWebhookConfiguration for `ns` only that points the apiserver at it by URL."""
    port = _free_port()
    _, _, ca = webhook_tls.serving_certificate(folder)  # tls.crt and tls.key in `folder`, the cert dir
    admission = client.AdmissionregistrationV1Api(kube.api)
    configuration = webhook_tls.webhook_configuration(f"millrace-bench-{ns}", ns, port, ca)
    args = ("--webhook-host", "127.0.0.1", "--webhook-port", str(port), "--webhook-cert-dir", str(folder))
    with operator(kube, ns, folder / "operator.log", args) as op:
        webhook_tls.wait_until_listening(port, op.process, op.log)
        admission.create_validating_webhook_configuration(configuration)
        try:
            yield op
        finally:
            with contextlib.suppress(ApiException):
                admission.delete_validating_webhook_configuration(configuration["metadata"]["name"])
