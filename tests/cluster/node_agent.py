#!/usr/bin/env python3
"""TEST DOUBLE: a stand-in for the kubelet and a container runtime.

This machine has no container runtime, so the cluster tests run pods with
this small agent instead of a kubelet.  Everything else (apiserver, etcd,
controller-manager: Job controller, garbage collector, ...) is the real
Kubernetes.  This file is test code, not part of the product.

What it does, as a kubelet would:

* registers one or more Nodes (``--node-name``, repeated; Ready, InternalIP
  127.0.0.1), renews their Leases and heartbeats their status;
* schedules, as kube-scheduler would (there is none): once a pod's claims
  are Bound, binds it to a node that fits its nodeSelector, required node
  affinity (matchExpressions on labels, matchFields on metadata.name) and
  required pod affinity / anti-affinity (the first pod of a group may go
  anywhere when it matches its own term), the node with the fewest pods,
  in turn on a tie; a pod that fits no node is reported Unschedulable;
* attaches a ReadWriteOnce (or ReadWriteOncePod) claim's volume to one node
  at a time: a pod of another node waits in ContainerCreating, with a
  ``FailedAttachVolume`` "Multi-Attach error" event, until no pod of the
  first node uses the claim;
* runs each container through node_container.py: as the securityContext's
  runAsUser / runAsGroup (the container's over the pod's), with fsGroup and
  supplementalGroups as supplementary groups, in a private mount namespace
  where readOnlyRootFilesystem makes every mount read-only but the pod's
  writable volumes (EROFS elsewhere), readOnly volume mounts and ConfigMap,
  Secret, downwardAPI and projected volumes are read-only, and
  allowPrivilegeEscalation: false sets no_new_privs.  runAsNonRoot is
  checked as a kubelet checks it; there are no images, so every image is
  taken to run as root (uid 0, gid 0) and to name no other users: a
  runAsNonRoot container without a non-zero runAsUser stays waiting in
  CreateContainerConfigError.  fsGroup makes emptyDir and claim folders
  group-writable (setgid) and the other volumes group-readable; emptyDir
  folders are mode 0777, as a kubelet makes them;
* runs each pod's containers as local processes: init containers in order,
  then the others side by side, with their ``command`` + ``args`` (with
  ``$(VAR)`` expansion), ``env`` and ``envFrom`` (values, ConfigMap and
  Secret keys, downward API fields, resource fields) and ``workingDir``;
* maps volumes to local folders under the pod's folder: emptyDir,
  ConfigMap, Secret, downwardAPI, projected (including a real service
  account token from the TokenRequest API), hostPath, and
  PersistentVolumeClaim (one folder per claim, shared by every pod that
  mounts it); a ConfigMap or Secret volume that lists a key its object
  lacks is not mounted (the pod waits in ContainerCreating, retried) unless
  it is optional; each ConfigMap and Secret a pod refers to is read once for its
  volumes and environment, as from a kubelet's object cache (again when a
  container restarts or could not start);
* provisions claims of its default StorageClass ``millrace-local``: a
  PersistentVolume (hostPath: the claim's folder) that the real
  PersistentVolume controller binds, deleted with the folder on release;
* reports pod status like a kubelet: Pending -> Running -> Succeeded or
  Failed, container states with exit codes, start and finish times, restart
  counts, the termination message (terminationMessagePath, or the log tail
  with FallbackToLogsOnError), pod conditions, pod IP 127.0.0.1;
* restarts containers per restartPolicy (Always, OnFailure) with back-off;
* sets the service environment variables of the pod's namespace
  (``<NAME>_SERVICE_HOST`` = 127.0.0.1, the port is the target port: there
  is no kube-proxy, every pod listens on the host's loopback);
* honours activeDeadlineSeconds (Failed, reason DeadlineExceeded) and
  deletion (SIGTERM, grace period, SIGKILL, then the pod is removed);
* keeps each container's output (stdout and stderr together) in
  ``<root>/pods/<namespace>_<pod>_<uid>/logs/<container>.log`` and serves it
  on the kubelet's log endpoint, so ``kubectl logs`` works.

What it does not do: images are ignored (a container must set ``command``;
the process runs with the host's programs, e.g. the python3 on PATH; the
``--image-path`` folders, which hold them, stay readable for any user; an
image named by ``--image IMAGE=ROOT`` only puts ROOT/bin first on PATH), the
only isolation is the mount namespace and the user (no PID or network
namespace, cgroups, resource limits, capabilities or seccomp: a container
that runs as root keeps root's capabilities), taints are not honoured,
probes are not run (a running container is ready), no
exec/attach/port-forward, and ports are the host's.  Without
readOnlyRootFilesystem the container's "root filesystem" is this machine's,
writable as far as the container's user may write.

Paths: a container's mount paths and working directory are folders under
``<pod dir>/containers/<name>/root`` (mount paths are symlinks to the volume
folders).  Absolute paths that start with a mount path, the working
directory or the termination message path are rewritten to that folder
wherever they appear in ``command``, ``args`` and env values; relative
paths work as they are, since the process starts in its working directory.
``MILLRACE_CONTAINER_ROOT`` holds the root folder.  A volume mounted over a
folder of this machine that the container does not otherwise need (e.g.
/tmp) is also bound at that real path.  When the pod mounts a
service account token, ``KUBECONFIG`` points at a kubeconfig that uses that
token (the fixed in-cluster path /var/run/secrets/... is not available to a
plain process), and ``KUBERNETES_SERVICE_HOST``/``_PORT`` point at the
apiserver.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import http.client
import http.server
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
import uuid
from pathlib import Path

import yaml

TERMINAL = ("Succeeded", "Failed")
STORAGE_CLASS = "millrace-local"
PROVISIONER = "millrace.dev/node-agent"
AGENT_VERSION = "millrace-node-agent/0.1"


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_micro() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(s: str) -> float:
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def log(msg: str) -> None:
    print(f"[node-agent {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ------------------------------------------------------------------ REST

class ApiError(Exception):
    def __init__(self, status: int, body: str):
        super().__init__(f"HTTP {status}: {body[:500]}")
        self.status = status


class Kube:
    """A minimal Kubernetes REST client (JSON over HTTPS, client certificate)."""

    def __init__(self, kubeconfig: str):
        cfg = yaml.safe_load(Path(kubeconfig).read_text())
        ctx_name = cfg["current-context"]
        ctx = next(c["context"] for c in cfg["contexts"] if c["name"] == ctx_name)
        cluster = next(c["cluster"] for c in cfg["clusters"] if c["name"] == ctx["cluster"])
        user = next(u["user"] for u in cfg["users"] if u["name"] == ctx["user"])
        u = urllib.parse.urlparse(cluster["server"])
        self.server = cluster["server"]
        self.host, self.port = u.hostname, u.port or 443
        self.ca_pem = base64.b64decode(cluster["certificate-authority-data"]).decode()
        self._tmp = tempfile.mkdtemp(prefix="millrace-agent-")
        cert, key = Path(self._tmp, "c.crt"), Path(self._tmp, "c.key")
        cert.write_bytes(base64.b64decode(user["client-certificate-data"]))
        key.write_bytes(base64.b64decode(user["client-key-data"]))
        key.chmod(0o600)
        self.ctx = ssl.create_default_context(cadata=self.ca_pem)
        self.ctx.load_cert_chain(str(cert), str(key))

    def _conn(self, timeout: float) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=timeout)

    def request(self, method: str, path: str, body=None, query: dict | None = None,
                content_type: str = "application/json", timeout: float = 30):
        if query:
            path += "?" + urllib.parse.urlencode(query)
        data = json.dumps(body).encode() if body is not None else None
        conn = self._conn(timeout)
        try:
            conn.request(method, path, body=data, headers={
                "Content-Type": content_type, "Accept": "application/json",
                "User-Agent": AGENT_VERSION})
            resp = conn.getresponse()
            raw = resp.read()
        finally:
            conn.close()
        if resp.status >= 300:
            raise ApiError(resp.status, raw.decode(errors="replace"))
        return json.loads(raw) if raw else None

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def merge_patch(self, path, body):
        return self.request("PATCH", path, body, content_type="application/merge-patch+json")

    def watch(self, path: str, resource_version: str, timeout_seconds: int = 290):
        """Yield watch events until the server closes the stream."""
        q = {"watch": "1", "resourceVersion": resource_version, "allowWatchBookmarks": "true",
             "timeoutSeconds": str(timeout_seconds)}
        conn = self._conn(timeout_seconds + 30)
        try:
            conn.request("GET", path + "?" + urllib.parse.urlencode(q),
                         headers={"Accept": "application/json", "User-Agent": AGENT_VERSION})
            resp = conn.getresponse()
            if resp.status != 200:
                raise ApiError(resp.status, resp.read().decode(errors="replace"))
            while True:
                line = resp.readline()
                if not line:
                    return
                if line.strip():
                    yield json.loads(line)
        finally:
            conn.close()


# ----------------------------------------------------------- helpers

_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)|\$\$")


def expand(s: str, env: dict) -> str:
    """Kubernetes $(VAR) expansion: known vars replaced, $$ -> $, others kept."""
    def sub(m):
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))
    return _REF.sub(sub, s)


def field_path(pod: dict, path: str, node_name: str):
    md, spec = pod["metadata"], pod["spec"]
    m = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if m:
        return (md.get(m.group(1)) or {}).get(m.group(2), "")
    simple = {
        "metadata.name": md.get("name"),
        "metadata.namespace": md.get("namespace"),
        "metadata.uid": md.get("uid"),
        "spec.nodeName": spec.get("nodeName") or node_name,
        "spec.serviceAccountName": spec.get("serviceAccountName", "default"),
        "status.podIP": "127.0.0.1",
        "status.podIPs": "127.0.0.1",
        "status.hostIP": "127.0.0.1",
        "status.hostIPs": "127.0.0.1",
    }
    if path in simple:
        return simple[path] or ""
    if path == "metadata.labels":
        return "\n".join(f'{k}="{v}"' for k, v in sorted((md.get("labels") or {}).items()))
    if path == "metadata.annotations":
        return "\n".join(f'{k}="{v}"' for k, v in sorted((md.get("annotations") or {}).items()))
    raise ValueError(f"unsupported fieldRef {path}")


_QTY = {"Ki": 1024, "Mi": 1024 ** 2, "Gi": 1024 ** 3, "Ti": 1024 ** 4,
        "k": 1000, "M": 1000 ** 2, "G": 1000 ** 3, "T": 1000 ** 4, "m": 0.001, "": 1}


def quantity(q: str) -> float:
    m = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(q))
    if not m or m.group(2) not in _QTY:
        raise ValueError(f"bad quantity {q}")
    return float(m.group(1)) * _QTY[m.group(2)]


def resource_field(container: dict, ref: dict) -> str:
    res = ref["resource"]
    kind, _, name = res.partition(".")
    val = ((container.get("resources") or {}).get(kind) or {}).get(name)
    if val is None:  # like a kubelet: node allocatable when no limit is set
        val = str(os.cpu_count() or 1) if name == "cpu" else str(_mem_bytes())
    divisor = quantity(ref.get("divisor") or "1")
    import math
    return str(int(math.ceil(quantity(val) / divisor)))


def _mem_bytes() -> int:
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 * 1024 ** 3


def safe_rel(p: str) -> str:
    p = os.path.normpath("/" + p).lstrip("/")
    if p.startswith(".."):
        raise ValueError(f"bad path {p}")
    return p


def selector_matches(selector: dict | None, labels: dict) -> bool:
    """A label selector (matchLabels, matchExpressions); none matches nothing."""
    if selector is None:
        return False
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for e in selector.get("matchExpressions") or []:
        op, key, values = e["operator"], e["key"], e.get("values") or []
        if op == "In" and labels.get(key) not in values or op == "NotIn" and labels.get(key) in values \
                or op == "Exists" and key not in labels or op == "DoesNotExist" and key in labels:
            return False
    return True


def node_term_matches(term: dict, node: dict) -> bool:
    """One nodeSelectorTerm: all its matchExpressions (node labels) and matchFields (metadata.name)."""
    labels = node["metadata"].get("labels") or {}
    checks = [(e, labels.get(e["key"])) for e in term.get("matchExpressions") or []] + \
        [(e, node["metadata"]["name"] if e["key"] == "metadata.name" else None) for e in term.get("matchFields") or []]
    if not checks:
        return False
    for e, value in checks:
        op, values = e["operator"], e.get("values") or []
        if op == "In" and value not in values or op == "NotIn" and value in values \
                or op == "Exists" and value is None or op == "DoesNotExist" and value is not None:
            return False
        if op in ("Gt", "Lt"):
            try:
                a, b = int(value), int(values[0])
            except (TypeError, ValueError, IndexError):
                return False
            if (a <= b) if op == "Gt" else (a >= b):
                return False
    return True


# --------------------------------------------------------------- pods

class PodGone(Exception):
    pass


VOLUME_KINDS = ("persistentVolumeClaim", "hostPath", "projected", "configMap", "secret", "downwardAPI",
                "emptyDir", "ephemeral")
# A kubelet mounts these read-only whatever the volumeMount says.
READ_ONLY_KINDS = ("projected", "configMap", "secret", "downwardAPI")
NODE_CONTAINER = Path(__file__).resolve().parent / "node_container.py"


class ConfigError(Exception):
    """A referenced ConfigMap, Secret or key is missing: retried, as a kubelet does."""


class MultiAttach(ConfigError):
    """A single-node claim is in use on another node: the pod waits, as for a kubelet."""


class ContainerRun:
    def __init__(self, spec: dict, init: bool):
        self.spec, self.init = spec, init
        self.name = spec["name"]
        self.proc: subprocess.Popen | None = None
        self.state: dict = {"waiting": {"reason": "ContainerCreating"}}
        self.last_state: dict = {}
        self.restarts = 0
        self.id = ""
        self.started_at = None
        self.killed = False


class PodWorker(threading.Thread):
    def __init__(self, agent: "Agent", pod: dict):
        md = pod["metadata"]
        super().__init__(name=f"pod-{md['namespace']}/{md['name']}", daemon=True)
        self.agent, self.kube = agent, agent.kube
        self.pod = pod
        self.ns, self.pod_name, self.uid = md["namespace"], md["name"], md["uid"]
        self.dir = agent.root / "pods" / f"{self.ns}_{self.pod_name}_{self.uid}"
        self.lock = threading.RLock()
        self.stop_reason: str | None = None   # "deleted" | "deadline"
        self.stop_event = threading.Event()
        spec = pod["spec"]
        self.inits = [ContainerRun(c, True) for c in spec.get("initContainers") or []]
        self.mains = [ContainerRun(c, False) for c in spec.get("containers") or []]
        self.phase = "Pending"
        self.reason = self.message = None
        self.conditions: dict[str, dict] = {}
        self.start_time = (pod.get("status") or {}).get("startTime") or now()
        self.volumes: dict[str, Path] = {}
        self.volume_kinds: dict[str, str] = {}
        self.node_name = spec.get("nodeName") or agent.node_names[0]
        self.attached: list[str] = []   # claims this pod holds on its node
        self.done = False
        # ConfigMaps and Secrets read for this pod, by (kind, name): as from a kubelet's object
        # cache, the volumes and the environment of a pod's start come from one read of each
        # object. A container that restarts or failed to start reads them again (a kubelet's
        # cache follows changes by watching).
        self.fetched: dict[tuple[str, str], dict] = {}

    # -- status ------------------------------------------------------
    def _cond(self, type_: str, status: bool, reason: str | None = None):
        s = "True" if status else "False"
        old = self.conditions.get(type_)
        if old and old["status"] == s:
            return
        c = {"type": type_, "status": s, "lastProbeTime": None, "lastTransitionTime": now()}
        if reason:
            c["reason"] = reason
        self.conditions[type_] = c

    def _cstatus(self, c: ContainerRun) -> dict:
        st = {"name": c.name, "image": c.spec.get("image", ""), "imageID": "",
              "ready": bool("running" in c.state and not c.init),
              "started": "running" in c.state, "restartCount": c.restarts, "state": c.state}
        if c.id:
            st["containerID"] = c.id
        if c.last_state:
            st["lastState"] = c.last_state
        return st

    def push_status(self):
        with self.lock:
            status = {
                "phase": self.phase, "hostIP": "127.0.0.1", "hostIPs": [{"ip": "127.0.0.1"}],
                "podIP": "127.0.0.1", "podIPs": [{"ip": "127.0.0.1"}], "startTime": self.start_time,
                "conditions": list(self.conditions.values()),
                "containerStatuses": [self._cstatus(c) for c in self.mains],
                "reason": self.reason, "message": self.message,
            }
            if self.inits:
                status["initContainerStatuses"] = [self._cstatus(c) for c in self.inits]
        try:
            self.kube.merge_patch(f"/api/v1/namespaces/{self.ns}/pods/{self.pod_name}/status",
                                  {"metadata": {"uid": self.uid}, "status": status})
        except ApiError as e:
            if e.status in (404, 409):
                raise PodGone() from e
            log(f"{self.ns}/{self.pod_name}: status update failed: {e}")

    # -- volumes -----------------------------------------------------
    def _get(self, kind: str, name: str, optional: bool):
        if (kind, name) in self.fetched:
            return self.fetched[(kind, name)]
        try:
            found = self.kube.get(f"/api/v1/namespaces/{self.ns}/{kind}/{name}")
            self.fetched[(kind, name)] = found
            return found
        except ApiError as e:
            if e.status != 404:
                raise
            if optional:
                return None
            singular = {"configmaps": "configmap", "secrets": "secret"}[kind]
            raise ConfigError(f'{singular} "{name}" not found') from e

    def _write_keys(self, folder: Path, data: dict, src: dict, what: str, binary=False):
        """The keys of a ConfigMap or Secret as files. A listed key the object lacks fails the
        mount unless the source is optional, as a kubelet's payload rule does."""
        folder.mkdir(parents=True, exist_ok=True)
        mode, items = src.get("defaultMode"), src.get("items")
        pairs = [(i["key"], i["path"], i.get("mode", mode)) for i in items] if items else \
            [(k, k, mode) for k in data]
        for key, rel, m in pairs:
            if key not in data:
                if src.get("optional", False):
                    continue
                raise ConfigError(f'{what} references non-existent key "{key}"')
            p = folder / safe_rel(rel)
            p.parent.mkdir(parents=True, exist_ok=True)
            v = data[key]
            p.write_bytes(base64.b64decode(v) if binary else v.encode())
            p.chmod(m if m is not None else 0o644)

    def _source_files(self, folder: Path, src: dict, is_projected: bool):
        if "configMap" in src:
            s = src["configMap"]
            cm = self._get("configmaps", s["name"], s.get("optional", False)) or {}
            data = dict(cm.get("data") or {})
            data.update({k: base64.b64decode(v).decode(errors="replace")
                         for k, v in (cm.get("binaryData") or {}).items()})
            self._write_keys(folder, data, s, "configmap")
        elif "secret" in src:
            s = src["secret"]
            name = s.get("secretName") or s.get("name")
            sec = self._get("secrets", name, s.get("optional", False)) or {}
            self._write_keys(folder, sec.get("data") or {}, s, "secret", True)
        elif "downwardAPI" in src:
            folder.mkdir(parents=True, exist_ok=True)
            for item in src["downwardAPI"].get("items") or []:
                if "fieldRef" in item:
                    val = field_path(self.pod, item["fieldRef"]["fieldPath"], self.node_name)
                else:
                    cname = item["resourceFieldRef"].get("containerName")
                    cont = next((c.spec for c in self.mains if c.name == cname), self.mains[0].spec)
                    val = resource_field(cont, item["resourceFieldRef"])
                p = folder / safe_rel(item["path"])
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_text(str(val))
        elif "serviceAccountToken" in src:
            s = src["serviceAccountToken"]
            token = self.agent.request_token(self.pod, s.get("audience"),
                                             s.get("expirationSeconds", 3600))
            folder.mkdir(parents=True, exist_ok=True)
            p = folder / safe_rel(s["path"])
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(token)
        elif "clusterTrustBundle" in src:
            raise RuntimeError("clusterTrustBundle projections are not supported by the node agent")

    def setup_volumes(self):
        vroot = self.dir / "volumes"
        for v in self.pod["spec"].get("volumes") or []:
            name = v["name"]
            folder = vroot / name
            if "persistentVolumeClaim" in v:
                claim = v["persistentVolumeClaim"]["claimName"]
                self.attach(claim)
                folder = self.agent.claim_dir(self.ns, claim)
                folder.mkdir(parents=True, exist_ok=True)
            elif "hostPath" in v:
                folder = Path(v["hostPath"]["path"])
                if v["hostPath"].get("type") in ("DirectoryOrCreate",):
                    folder.mkdir(parents=True, exist_ok=True)
            elif "projected" in v:
                for src in v["projected"].get("sources") or []:
                    self._source_files(folder, src, True)
                folder.mkdir(parents=True, exist_ok=True)
            elif any(k in v for k in ("configMap", "secret", "downwardAPI")):
                self._source_files(folder, v, False)
            else:  # emptyDir, ephemeral and anything else: an empty folder
                folder.mkdir(parents=True, exist_ok=True)
                folder.chmod(0o777)  # as a kubelet makes an emptyDir
            kind = next((k for k in VOLUME_KINDS if k in v), "emptyDir")
            self.volume_kinds[name] = kind
            self.volumes[name] = folder
            self._own(folder, kind)

    def attach(self, claim: str):
        """A ReadWriteOnce (or ReadWriteOncePod) claim's volume is attached to
        one node at a time: wait while pods of another node use it."""
        if claim in self.attached:
            return
        pvc = self.kube.get(f"/api/v1/namespaces/{self.ns}/persistentvolumeclaims/{claim}")
        modes = set(pvc["spec"].get("accessModes") or [])
        if not modes & {"ReadWriteOnce", "ReadWriteOncePod"} or modes & {"ReadWriteMany", "ReadOnlyMany"}:
            return
        holders = self.agent.attach(self.ns, claim, self.node_name, self.uid, self.pod_name)
        if holders:
            volume = pvc["spec"].get("volumeName") or claim
            raise MultiAttach(f'Multi-Attach error for volume "{volume}" Volume is already used by pod(s) '
                              f'{", ".join(holders)}')
        self.attached.append(claim)

    def _own(self, folder: Path, kind: str):
        """fsGroup, as a kubelet applies it: the volume's files belong to that
        group, writable volumes are group-writable with setgid folders."""
        fs_group = (self.pod["spec"].get("securityContext") or {}).get("fsGroup")
        if fs_group is None or kind == "hostPath":
            return
        writable = kind in ("emptyDir", "persistentVolumeClaim")
        for d, dirs, files in os.walk(folder):
            os.chown(d, -1, fs_group)
            os.chmod(d, os.stat(d).st_mode | (0o2070 if writable else 0o050))
            for f in files:
                fp = os.path.join(d, f)
                if os.path.islink(fp):
                    continue
                os.chown(fp, -1, fs_group)
                os.chmod(fp, os.stat(fp).st_mode | (0o060 if writable else 0o040))

    # -- container preparation ----------------------------------------
    def container_env(self, c: dict, root: Path) -> dict:
        keep = ("PATH", "LANG", "LC_ALL", "TZ", "SSL_CERT_FILE", "SSL_CERT_DIR")
        env = {k: os.environ[k] for k in keep if k in os.environ}
        image_root = self.agent.images.get(c.get("image", ""))
        if image_root:
            # The image's programs come first, as its own PATH would put them.
            env["PATH"] = os.pathsep.join([str(Path(image_root) / "bin"), *filter(None, [env.get("PATH")])])
        home = self.dir / "home"
        home.mkdir(exist_ok=True)
        env.update({
            "HOME": str(home), "HOSTNAME": self.pod_name,
            "KUBERNETES_SERVICE_HOST": "127.0.0.1",
            "KUBERNETES_SERVICE_PORT": str(self.agent.api_port),
            "KUBERNETES_SERVICE_PORT_HTTPS": str(self.agent.api_port),
            "KUBERNETES_PORT": f"tcp://127.0.0.1:{self.agent.api_port}",
            "MILLRACE_CONTAINER_ROOT": str(root),
        })
        if self.pod["spec"].get("enableServiceLinks", True):
            env.update(self.service_links())
        sa_mount = next((m for m in c.get("volumeMounts") or []
                         if m["mountPath"].rstrip("/") == "/var/run/secrets/kubernetes.io/serviceaccount"),
                        None)
        if sa_mount:
            env["KUBECONFIG"] = str(self.write_sa_kubeconfig(self.volumes[sa_mount["name"]]))
        self._injected_env = dict(env)  # host values: never path-rewritten
        for ef in c.get("envFrom") or []:
            prefix = ef.get("prefix", "")
            if "configMapRef" in ef:
                r = ef["configMapRef"]
                obj = self._get("configmaps", r["name"], r.get("optional", False)) or {}
                env.update({prefix + k: v for k, v in (obj.get("data") or {}).items()})
            elif "secretRef" in ef:
                r = ef["secretRef"]
                obj = self._get("secrets", r["name"], r.get("optional", False)) or {}
                env.update({prefix + k: base64.b64decode(v).decode(errors="replace")
                            for k, v in (obj.get("data") or {}).items()})
        for e in c.get("env") or []:
            name = e["name"]
            if "valueFrom" not in e:
                env[name] = expand(e.get("value", ""), env)
                continue
            vf = e["valueFrom"]
            if "fieldRef" in vf:
                env[name] = str(field_path(self.pod, vf["fieldRef"]["fieldPath"], self.node_name))
            elif "resourceFieldRef" in vf:
                env[name] = resource_field(c, vf["resourceFieldRef"])
            elif "configMapKeyRef" in vf:
                r = vf["configMapKeyRef"]
                obj = self._get("configmaps", r["name"], r.get("optional", False)) or {}
                if r["key"] in (obj.get("data") or {}):
                    env[name] = obj["data"][r["key"]]
                elif not r.get("optional"):
                    raise ConfigError(f"couldn't find key {r['key']} in ConfigMap {self.ns}/{r['name']}")
            elif "secretKeyRef" in vf:
                r = vf["secretKeyRef"]
                obj = self._get("secrets", r["name"], r.get("optional", False)) or {}
                if r["key"] in (obj.get("data") or {}):
                    env[name] = base64.b64decode(obj["data"][r["key"]]).decode(errors="replace")
                elif not r.get("optional"):
                    raise ConfigError(f"couldn't find key {r['key']} in Secret {self.ns}/{r['name']}")
        return env

    def service_links(self) -> dict:
        """The kubelet's service environment variables, for the Services of the
        pod's namespace.  There is no kube-proxy: every pod listens on
        127.0.0.1, so HOST is 127.0.0.1 and the port is the target port."""
        env = {}
        try:
            services = self.kube.get(f"/api/v1/namespaces/{self.ns}/services")["items"]
        except ApiError:
            return env
        for svc in services:
            spec = svc["spec"]
            if spec.get("clusterIP") in (None, "", "None") or spec.get("type") == "ExternalName":
                continue
            name = svc["metadata"]["name"].upper().replace("-", "_")
            for i, port in enumerate(spec.get("ports") or []):
                target = port.get("targetPort", port["port"])
                target = target if isinstance(target, int) else port["port"]
                proto = port.get("protocol", "TCP")
                if i == 0:
                    env[f"{name}_SERVICE_HOST"] = "127.0.0.1"
                    env[f"{name}_SERVICE_PORT"] = str(target)
                    env[f"{name}_PORT"] = f"{proto.lower()}://127.0.0.1:{target}"
                if port.get("name"):
                    env[f"{name}_SERVICE_PORT_{port['name'].upper().replace('-', '_')}"] = str(target)
                pre = f"{name}_PORT_{port['port']}_{proto}"
                env.update({pre: f"{proto.lower()}://127.0.0.1:{target}", pre + "_PROTO": proto.lower(),
                            pre + "_PORT": str(target), pre + "_ADDR": "127.0.0.1"})
        return env

    def write_sa_kubeconfig(self, folder: Path) -> Path:
        ca = folder / "ca.crt"
        cfg = {"apiVersion": "v1", "kind": "Config",
               "clusters": [{"name": "in-cluster", "cluster": {
                   "server": self.agent.apiserver,
                   **({"certificate-authority": str(ca)} if ca.exists() else
                      {"certificate-authority-data": base64.b64encode(self.kube.ca_pem.encode()).decode()})}}],
               "users": [{"name": "sa", "user": {"tokenFile": str(folder / "token")}}],
               "contexts": [{"name": "in-cluster", "context": {
                   "cluster": "in-cluster", "user": "sa", "namespace": self.ns}}],
               "current-context": "in-cluster"}
        p = self.dir / "sa-kubeconfig"
        p.write_text(json.dumps(cfg, indent=2))
        return p

    def identity(self, c: dict) -> tuple[int | None, int | None, list[int]]:
        """(uid, gid, supplementary groups) of a container, from the pod's and
        the container's securityContext (the container's wins), checked as a
        kubelet checks runAsNonRoot.  There are no images: every image is
        taken to run as root (uid 0, gid 0) and to name no other users."""
        pod_sc = self.pod["spec"].get("securityContext") or {}
        sc = c.get("securityContext") or {}
        uid = sc.get("runAsUser", pod_sc.get("runAsUser"))
        gid = sc.get("runAsGroup", pod_sc.get("runAsGroup"))
        if sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")):
            if uid is None:
                raise ConfigError(f'container has runAsNonRoot and image will run as root '
                                  f'(pod: "{self.pod_name}_{self.ns}({self.uid})", container: {c["name"]})')
            if uid == 0:
                raise ConfigError(f"container's runAsUser breaks non-root policy "
                                  f'(pod: "{self.pod_name}_{self.ns}({self.uid})", container: {c["name"]})')
        groups = ([pod_sc["fsGroup"]] if pod_sc.get("fsGroup") is not None else []) + \
            list(pod_sc.get("supplementalGroups") or [])
        return uid, gid, groups

    def prepare(self, cr: ContainerRun):
        """Build the container's root folder; return (argv, cwd, env, term_path, launch spec)."""
        c = cr.spec
        uid, gid, groups = self.identity(c)
        croot = self.dir / "containers" / cr.name
        root = croot / "root"
        root.mkdir(parents=True, exist_ok=True)
        mapping: dict[str, str] = {}
        writable: set[str] = set()
        read_only: set[str] = set()
        at_mount_path: list[tuple[str, str, bool]] = []
        for m in sorted(c.get("volumeMounts") or [], key=lambda m: len(m["mountPath"])):
            mp = "/" + safe_rel(m["mountPath"])
            if mp == "/":
                continue
            target = self.volumes[m["name"]]
            ro = bool(m.get("readOnly")) or self.volume_kinds.get(m["name"]) in READ_ONLY_KINDS
            if m.get("subPath"):
                target = target / safe_rel(m["subPath"])
                if not target.exists():
                    target.mkdir(parents=True, exist_ok=True)
            link = root / mp.lstrip("/")
            link.parent.mkdir(parents=True, exist_ok=True)
            if link.is_symlink() or link.exists():
                if link.is_symlink() or link.is_file():
                    link.unlink()
                else:
                    shutil.rmtree(link)
            link.symlink_to(target)
            mapping[mp] = str(link)
            (read_only if ro else writable).add(str(target.resolve()))
            at_mount_path.append((mp, str(target.resolve()), not ro))
        wd = c.get("workingDir")
        if wd:
            wd = "/" + safe_rel(wd)
            (root / wd.lstrip("/")).mkdir(parents=True, exist_ok=True)
            mapping.setdefault(wd, str(root / wd.lstrip("/")))
            cwd = root / wd.lstrip("/")
        else:
            cwd = root
        term = c.get("terminationMessagePath") or "/dev/termination-log"
        term_file = croot / "termination-log"
        term_file.write_text("")
        term_file.chmod(0o666)
        mapping[term] = str(term_file)
        writable.add(str(term_file))
        env = self.container_env(c, root)
        rx = None
        if mapping:
            keys = sorted(mapping, key=len, reverse=True)
            rx = re.compile(r"(?<![\w.:/-])(" + "|".join(re.escape(k) for k in keys) +
                            r")(?![\w.-])(/[^\s'\"`;,()\[\]{}<>|&]*)?")

        def one(m: re.Match) -> str:
            key, rest = m.group(1), m.group(2) or ""
            mapped = mapping[key] + rest
            # A path of this machine that happens to start with a mount path
            # (e.g. a program under /tmp while the pod mounts /tmp) stays.
            if rest and os.path.lexists(key + rest) and not os.path.lexists(mapped):
                return key + rest
            return mapped

        def rewrite(s: str) -> str:
            return rx.sub(one, s) if rx else s

        injected = getattr(self, "_injected_env", {})
        env = {k: (v if injected.get(k) == v else rewrite(v)) for k, v in env.items()}
        command = [expand(x, env) for x in c.get("command") or []]
        args = [expand(x, env) for x in c.get("args") or []]
        if not command:
            raise RuntimeError("the node agent ignores images: a container must set `command`")
        argv = [rewrite(x) for x in command + args]
        exe = argv[0]
        if "/" not in exe:
            found = shutil.which(exe, path=env.get("PATH"))
            if not found:
                raise FileNotFoundError(f'exec: "{exe}": executable file not found in $PATH')
            argv[0] = found
        sc = c.get("securityContext") or {}
        launch = {"argv": argv, "env": env, "cwd": str(cwd), "uid": uid, "gid": gid, "groups": groups,
                  "namespace": True, "read_only_root": bool(sc.get("readOnlyRootFilesystem")),
                  "writable": sorted(writable), "read_only": sorted(read_only - writable),
                  "at_mount_path": self.real_path_mounts(at_mount_path, argv[0]),
                  "image_paths": self.agent.image_paths, "stage": str(croot / "stage"),
                  "no_new_privileges": sc.get("allowPrivilegeEscalation") is False}
        return argv, cwd, env, term_file, launch

    def real_path_mounts(self, mounts: list[tuple[str, str, bool]], program: str) -> list[tuple[str, str, bool]]:
        """The mounts that can also sit at their real path (e.g. /tmp, so that
        programs that use it without being told find the volume there): those
        over a folder this machine has that holds none of what the container
        itself needs (the pod's folders, the volumes, the images' programs)."""
        needed = [str(self.agent.root.resolve()), str(Path(program).resolve()), *self.agent.image_paths,
                  *(str(f.resolve()) for f in self.volumes.values())]
        return [(mp, target, rw) for mp, target, rw in mounts
                if os.path.isdir(mp) and not os.path.islink(mp)
                and not any(n == mp or n.startswith(mp + "/") for n in needed)]

    # -- running -----------------------------------------------------
    def start_container(self, cr: ContainerRun):
        argv, cwd, env, term, launch = self.prepare(cr)
        logs = self.dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        lf = logs / f"{cr.name}.log"
        if cr.restarts and lf.exists():
            lf.replace(logs / f"{cr.name}.previous.log")
        spec_file = self.dir / "containers" / cr.name / "launch.json"
        spec_file.touch(0o600)
        spec_file.write_text(json.dumps(launch))
        out = open(lf, "ab")
        try:
            # The runtime's last step (mount namespace, user, exec) is node_container.py.
            cr.proc = subprocess.Popen([sys.executable, "-I", "-S", str(NODE_CONTAINER), str(spec_file)],
                                       cwd="/", env={}, stdout=out, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, start_new_session=True, close_fds=True)
        finally:
            out.close()
        cr.term = term
        cr.id = f"millrace://{uuid.uuid4().hex}"
        cr.started_at = now()
        cr.state = {"running": {"startedAt": cr.started_at}}
        self.agent.index_pod(self)

    def finish_container(self, cr: ContainerRun, code: int):
        c = cr.spec
        msg = ""
        try:
            msg = cr.term.read_text(errors="replace")[:4096]
        except (OSError, AttributeError):
            pass
        if not msg and code != 0 and c.get("terminationMessagePolicy") == "FallbackToLogsOnError":
            try:
                lines = (self.dir / "logs" / f"{cr.name}.log").read_text(errors="replace").splitlines()[-80:]
                msg = "\n".join(lines)[-2048:]
            except OSError:
                pass
        if code < 0:  # killed by a signal: report as a shell would
            code = 128 - code
        term = {"exitCode": code, "reason": "Completed" if code == 0 else "Error",
                "startedAt": cr.started_at, "finishedAt": now(), "containerID": cr.id}
        if msg:
            term["message"] = msg
        cr.state = {"terminated": term}
        cr.proc = None

    def fail_container_start(self, cr: ContainerRun, err: Exception):
        """A container that cannot start: missing config waits, anything else fails."""
        log(f"{self.ns}/{self.pod_name}/{cr.name}: cannot start: {err}")
        self.fetched.clear()  # the next try reads the objects again: one may have been fixed meanwhile
        if isinstance(err, ConfigError):
            cr.state = {"waiting": {"reason": "CreateContainerConfigError", "message": str(err)[:4096]}}
            return
        cr.state = {"terminated": {"exitCode": 128, "reason": "StartError", "message": str(err)[:4096],
                                   "startedAt": now(), "finishedAt": now()}}

    def kill_all(self, grace: float):
        procs = [c for c in self.inits + self.mains if c.proc]
        for c in procs:
            c.killed = True
            try:
                os.killpg(c.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        for c in procs:
            left = max(0.0, deadline - time.monotonic())
            try:
                c.proc.wait(left)
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(c.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            code = c.proc.wait()
            self.finish_container(c, code)

    def deadline_left(self) -> float | None:
        ads = self.pod["spec"].get("activeDeadlineSeconds")
        if ads is None:
            return None
        return parse_time(self.start_time) + ads - time.time()

    def request_stop(self, reason: str, pod: dict | None = None):
        if pod is not None:
            self.pod = pod
        if self.stop_reason is None:
            self.stop_reason = reason
        self.stop_event.set()

    def _wait_step(self) -> bool:
        """Sleep a little; return True when asked to stop (deletion or deadline)."""
        left = self.deadline_left()
        if left is not None and left <= 0 and self.stop_reason is None:
            self.stop_reason = "deadline"
            self.stop_event.set()
        return self.stop_event.wait(0.05)

    def run(self):
        try:
            self._run()
        except PodGone:
            self.kill_all(0)
        except Exception:
            log(f"{self.ns}/{self.pod_name}: agent error:\n{traceback.format_exc()}")
            try:
                self.kill_all(0)
                self.phase, self.reason, self.message = "Failed", "NodeAgentError", traceback.format_exc()[-1000:]
                self.push_status()
            except Exception:
                pass
        finally:
            for claim in self.attached:
                self.agent.detach(self.ns, claim, self.uid)
            self.done = True
            self.agent.worker_done(self)

    def _run(self):
        spec = self.pod["spec"]
        policy = spec.get("restartPolicy", "Always")
        self.dir.mkdir(parents=True, exist_ok=True)
        self._cond("PodScheduled", True)
        self._cond("PodReadyToStartContainers", False)
        self._cond("Initialized", not self.inits, None if not self.inits else "ContainersNotInitialized")
        self._cond("ContainersReady", False, "ContainersNotReady")
        self._cond("Ready", False, "ContainersNotReady")
        self.push_status()
        reported = None
        while True:
            try:
                self.setup_volumes()
                break
            except ConfigError as e:  # like a kubelet: FailedMount, retried
                self.fetched.clear()
                if str(e) != reported:
                    reported = str(e)
                    log(f"{self.ns}/{self.pod_name}: volume setup waits: {e}")
                    if isinstance(e, MultiAttach):
                        self.agent.event(self.pod, "Warning", "FailedAttachVolume", str(e), "attachdetach-controller")
                    for c in self.inits + self.mains:
                        c.state = {"waiting": {"reason": "ContainerCreating", "message": f"MountVolume: {e}"}}
                    self.push_status()
                deadline = time.monotonic() + 2
                while time.monotonic() < deadline:
                    if self._wait_step():
                        return self._stopped()
        self._cond("PodReadyToStartContainers", True)

        # Init containers, one after another.
        for cr in self.inits:
            while True:
                try:
                    self.start_container(cr)
                except Exception as e:
                    self.fail_container_start(cr, e)
                self.push_status()
                if "waiting" in cr.state:
                    deadline = time.monotonic() + 2
                    while time.monotonic() < deadline:
                        if self._wait_step():
                            return self._stopped()
                    continue
                while cr.proc and cr.proc.poll() is None:
                    if self._wait_step():
                        return self._stopped()
                if cr.proc:
                    self.finish_container(cr, cr.proc.wait())
                code = cr.state["terminated"]["exitCode"]
                if code == 0:
                    break
                if policy == "Never":
                    self.phase = "Failed"
                    self.push_status()
                    return
                cr.restarts += 1
                self.fetched.clear()
                cr.last_state = cr.state
                cr.state = {"waiting": {"reason": "CrashLoopBackOff"}}
                self.push_status()
                if self.stop_event.wait(min(10, 2 ** cr.restarts / 2)):
                    return self._stopped()
        self._cond("Initialized", True)

        # Regular containers, side by side.
        backoff_until: dict[str, float] = {}
        for cr in self.mains:
            try:
                self.start_container(cr)
            except Exception as e:
                self.fail_container_start(cr, e)
                backoff_until[cr.name] = time.monotonic() + 2
        if any("running" in cr.state or "terminated" in cr.state for cr in self.mains):
            self.phase = "Running"
        self._update_ready()
        self.push_status()
        while True:
            if self._wait_step():
                return self._stopped()
            changed = False
            for cr in self.mains:
                if cr.proc and cr.proc.poll() is not None:
                    self.finish_container(cr, cr.proc.wait())
                    changed = True
                if "terminated" in cr.state:
                    code = cr.state["terminated"]["exitCode"]
                    if policy == "Always" or (policy == "OnFailure" and code != 0):
                        cr.restarts += 1
                        self.fetched.clear()
                        cr.last_state = cr.state
                        cr.state = {"waiting": {"reason": "CrashLoopBackOff" if cr.restarts > 1 else "ContainerCreating"}}
                        backoff_until[cr.name] = time.monotonic() + min(10, 2 ** (cr.restarts - 1) / 2)
                        changed = True
                if "waiting" in cr.state and time.monotonic() >= backoff_until.get(cr.name, 0):
                    before = json.dumps(cr.state)
                    try:
                        self.start_container(cr)
                    except Exception as e:
                        self.fail_container_start(cr, e)
                        backoff_until[cr.name] = time.monotonic() + 2
                    changed = changed or json.dumps(cr.state) != before
            if all("terminated" in cr.state for cr in self.mains):
                codes = [cr.state["terminated"]["exitCode"] for cr in self.mains]
                self.phase = "Succeeded" if all(c == 0 for c in codes) else "Failed"
                self._update_ready()
                self.push_status()
                log(f"{self.ns}/{self.pod_name}: {self.phase} (exit codes {codes})")
                return
            if changed:
                self._update_ready()
                self.push_status()

    def _update_ready(self):
        if self.phase == "Pending" and any("running" in c.state or "terminated" in c.state for c in self.mains):
            self.phase = "Running"
        ready = all("running" in cr.state for cr in self.mains) and self.phase == "Running"
        self._cond("ContainersReady", ready, None if ready else "ContainersNotReady")
        self._cond("Ready", ready, None if ready else "ContainersNotReady")

    def _stopped(self):
        if self.stop_reason == "deadline":
            self.kill_all(0)
            for cr in self.inits + self.mains:
                if "terminated" not in cr.state:
                    cr.state = {"terminated": {"exitCode": 137, "reason": "Error", "startedAt": self.start_time,
                                               "finishedAt": now()}}
            self.phase, self.reason = "Failed", "DeadlineExceeded"
            self.message = "Pod was active on the node longer than the specified deadline"
            self._update_ready()
            log(f"{self.ns}/{self.pod_name}: DeadlineExceeded")
            self.push_status()
            return
        # Deleted: SIGTERM, wait for the grace period, SIGKILL.
        md = self.pod.get("metadata", {})
        grace = md.get("deletionGracePeriodSeconds")
        if grace is None:
            grace = self.pod["spec"].get("terminationGracePeriodSeconds", 30)
        self.kill_all(min(float(grace), 30.0))
        for cr in self.inits + self.mains:
            if "terminated" not in cr.state:
                cr.state = {"terminated": {"exitCode": 137, "reason": "ContainerStatusUnknown",
                                           "startedAt": self.start_time, "finishedAt": now()}}
        if self.phase not in TERMINAL:
            codes = [cr.state["terminated"]["exitCode"] for cr in self.mains]
            policy = self.pod["spec"].get("restartPolicy", "Always")
            self.phase = "Succeeded" if policy != "Always" and codes and all(c == 0 for c in codes) else "Failed"
        self._update_ready()
        try:
            self.push_status()
        except PodGone:
            return
        self.agent.finalize_delete(self.ns, self.pod_name, self.uid)
        log(f"{self.ns}/{self.pod_name}: deleted")


# -------------------------------------------------------------- agent

class Agent:
    def __init__(self, args):
        self.kube = Kube(args.kubeconfig)
        self.apiserver = args.apiserver or self.kube.server
        self.api_port = urllib.parse.urlparse(self.apiserver).port or 443
        self.node_names: list[str] = args.node_name or ["millrace-node"]
        self.images: dict[str, str] = dict(spec.split("=", 1) for spec in args.image or [])
        self.image_paths: list[str] = [*(args.image_path or []), *self.images.values()]
        self.root = Path(args.root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = args.port
        self.workers: dict[str, PodWorker] = {}
        self.by_name: dict[tuple[str, str], PodWorker] = {}
        self.finished: set[str] = set()
        self.started_tasks: set[str] = set()
        self.lock = threading.Lock()
        self.args = args
        # The scheduler's view: uid -> (namespace, labels, node) of every
        # assigned pod that has not terminated (bindings count at once).
        self.placed: dict[str, tuple[str, dict, str]] = {}
        self.schedule_lock = threading.Lock()
        self._turn = 0
        # (namespace, claim) -> {"node": ..., "pods": {uid: name}}: where a
        # single-node claim's volume is attached, and which pods use it there.
        self.attachments: dict[tuple[str, str], dict] = {}

    # -- node ----------------------------------------------------------
    def node_status(self, node_name: str) -> dict:
        cpu, mem = str(os.cpu_count() or 1), f"{_mem_bytes() // 1024}Ki"
        t = now()

        def cond(type_, status, reason, message):
            return {"type": type_, "status": status, "reason": reason, "message": message,
                    "lastHeartbeatTime": t, "lastTransitionTime": self._started}
        res = {"cpu": cpu, "memory": mem, "pods": "250", "ephemeral-storage": "100Gi"}
        return {
            "capacity": res, "allocatable": res,
            "conditions": [
                cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "ok"),
                cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "ok"),
                cond("PIDPressure", "False", "KubeletHasSufficientPID", "ok"),
                cond("Ready", "True", "KubeletReady", "millrace test node agent is posting ready status"),
            ],
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"},
                          {"type": "Hostname", "address": node_name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.port}},
            "nodeInfo": {"machineID": "millrace", "systemUUID": "millrace", "bootID": self._boot,
                         "kernelVersion": os.uname().release, "osImage": "millrace test node agent",
                         "containerRuntimeVersion": "millrace://0.1", "kubeletVersion": "v0.0.0-node-agent",
                         "kubeProxyVersion": "", "operatingSystem": "linux", "architecture": "amd64"},
        }

    def register_nodes(self):
        self._started = now()
        self._boot = uuid.uuid4().hex
        for name in self.node_names:
            body = {"apiVersion": "v1", "kind": "Node", "metadata": {
                "name": name,
                "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                           "kubernetes.io/arch": "amd64", "millrace.dev/node-agent": "true"},
                "annotations": {"millrace.dev/node-agent": "test double for the kubelet; images are ignored"}}}
            try:
                self.kube.request("POST", "/api/v1/nodes", body)
            except ApiError as e:
                if e.status != 409:
                    raise
            self.kube.merge_patch(f"/api/v1/nodes/{name}/status", {"status": self.node_status(name)})
            log(f"node {name} registered")

    # -- volumes for claims ---------------------------------------------
    def claim_dir(self, ns: str, claim: str) -> Path:
        return self.root / "claims" / ns / claim

    def provision_loop(self):
        """A local-path provisioner: a default StorageClass whose claims get a
        PersistentVolume (hostPath: the claim's folder), as a CSI driver would."""
        sc = {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
              "metadata": {"name": STORAGE_CLASS, "annotations": {
                  "storageclass.kubernetes.io/is-default-class": "true"}},
              "provisioner": PROVISIONER, "reclaimPolicy": "Delete", "volumeBindingMode": "Immediate"}
        while True:
            try:
                self.kube.request("POST", "/apis/storage.k8s.io/v1/storageclasses", sc)
                break
            except ApiError as e:
                if e.status == 409:
                    break
                log(f"storage class: {e}")
            time.sleep(2)
        while True:
            try:
                self.provision_once()
            except Exception as e:
                log(f"provisioner: {e}")
            time.sleep(0.5)

    def provision_once(self):
        classes = {c["metadata"]["name"] for c in self.kube.get("/apis/storage.k8s.io/v1/storageclasses")["items"]
                   if c.get("provisioner") == PROVISIONER}
        for pvc in self.kube.get("/api/v1/persistentvolumeclaims")["items"]:
            md, spec = pvc["metadata"], pvc["spec"]
            if spec.get("volumeName") or md.get("deletionTimestamp") or spec.get("storageClassName") not in classes:
                continue
            size = ((spec.get("resources") or {}).get("requests") or {}).get("storage", "1Gi")
            folder = self.claim_dir(md["namespace"], md["name"])
            folder.mkdir(parents=True, exist_ok=True)
            pv = {"apiVersion": "v1", "kind": "PersistentVolume",
                  "metadata": {"name": f"pvc-{md['uid']}",
                               "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER}},
                  "spec": {"capacity": {"storage": size},
                           "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
                           "persistentVolumeReclaimPolicy": "Delete",
                           "storageClassName": spec["storageClassName"],
                           "volumeMode": spec.get("volumeMode", "Filesystem"),
                           "hostPath": {"path": str(folder), "type": "DirectoryOrCreate"},
                           "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                                        "namespace": md["namespace"], "name": md["name"],
                                        "uid": md["uid"]}}}
            try:
                self.kube.request("POST", "/api/v1/persistentvolumes", pv)
                log(f"provisioned {pv['metadata']['name']} for claim {md['namespace']}/{md['name']}")
            except ApiError as e:
                if e.status != 409:
                    raise
        for pv in self.kube.get("/api/v1/persistentvolumes")["items"]:
            md = pv["metadata"]
            if (md.get("annotations") or {}).get("pv.kubernetes.io/provisioned-by") != PROVISIONER:
                continue
            if (pv.get("status") or {}).get("phase") == "Released" \
                    and pv["spec"].get("persistentVolumeReclaimPolicy") == "Delete":
                path = pv["spec"].get("hostPath", {}).get("path")
                if path and Path(path).resolve().is_relative_to((self.root / "claims").resolve()):
                    shutil.rmtree(path, ignore_errors=True)
                try:
                    self.kube.request("DELETE", f"/api/v1/persistentvolumes/{md['name']}")
                    log(f"deleted {md['name']} (claim released)")
                except ApiError as e:
                    if e.status != 404:
                        raise

    def heartbeat_loop(self):
        while True:
            for name in self.node_names:
                lease_path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{name}"
                try:
                    self.kube.merge_patch(f"/api/v1/nodes/{name}/status", {"status": self.node_status(name)})
                    spec = {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": now_micro()}
                    try:
                        self.kube.merge_patch(lease_path, {"spec": spec})
                    except ApiError as e:
                        if e.status != 404:
                            raise
                        self.kube.request("POST", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
                                          {"metadata": {"name": name}, "spec": spec})
                except Exception as e:
                    log(f"heartbeat of {name} failed: {e}")
            time.sleep(10)

    def request_token(self, pod: dict, audience: str | None, seconds: int) -> str:
        md = pod["metadata"]
        sa = pod["spec"].get("serviceAccountName") or "default"
        spec = {"expirationSeconds": max(600, int(seconds)),
                "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": md["name"], "uid": md["uid"]}}
        if audience:
            spec["audiences"] = [audience]
        out = self.kube.request("POST", f"/api/v1/namespaces/{md['namespace']}/serviceaccounts/{sa}/token",
                                {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec})
        return out["status"]["token"]

    # -- scheduler -------------------------------------------------------
    def bind(self, pod: dict, node: str) -> bool:
        md = pod["metadata"]
        try:
            self.kube.request("POST", f"/api/v1/namespaces/{md['namespace']}/pods/{md['name']}/binding", {
                "apiVersion": "v1", "kind": "Binding",
                "metadata": {"name": md["name"], "uid": md["uid"]},
                "target": {"apiVersion": "v1", "kind": "Node", "name": node}})
        except ApiError as e:
            if e.status not in (404, 409):
                log(f"bind {md['namespace']}/{md['name']} failed: {e}")
            return False
        with self.lock:
            self.placed[md["uid"]] = (md["namespace"], md.get("labels") or {}, node)
        return True

    @staticmethod
    def claims_of(pod: dict) -> list[str]:
        return [v["persistentVolumeClaim"]["claimName"] for v in pod["spec"].get("volumes") or []
                if "persistentVolumeClaim" in v]

    def start_once(self, key: str, target, *args) -> None:
        with self.lock:
            if key in self.started_tasks:
                return
            self.started_tasks.add(key)
        threading.Thread(target=target, args=args, daemon=True).start()

    def schedule(self, pod: dict):
        """As kube-scheduler: once every claim of the pod is Bound, bind the pod
        to a node that fits it (nodeSelector, required node affinity, required
        pod (anti-)affinity), the one with the fewest pods, in turn on a tie;
        meanwhile report the pod unschedulable."""
        md = pod["metadata"]
        ns = md["namespace"]
        reported = None
        while True:
            try:
                current = self.kube.get(f"/api/v1/namespaces/{ns}/pods/{md['name']}")
            except ApiError:
                return  # the pod is gone
            if current["metadata"]["uid"] != md["uid"] or current["spec"].get("nodeName") \
                    or current["metadata"].get("deletionTimestamp"):
                return
            unbound = []
            for claim in self.claims_of(current):
                try:
                    phase = self.kube.get(f"/api/v1/namespaces/{ns}/persistentvolumeclaims/{claim}")["status"].get("phase")
                except ApiError:
                    phase = None
                if phase != "Bound":
                    unbound.append(claim)
            if unbound:
                message = f"pod has unbound immediate PersistentVolumeClaims: {', '.join(unbound)}"
            else:
                with self.schedule_lock:
                    node, message = self.pick_node(current)
                    if node and self.bind(current, node):
                        return
            if message and message != reported:
                try:
                    self.kube.merge_patch(f"/api/v1/namespaces/{ns}/pods/{md['name']}/status", {"status": {
                        "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                        "message": message, "lastTransitionTime": now()}]}})
                    reported = message
                except ApiError as e:
                    log(f"{ns}/{md['name']}: cannot report unschedulable: {e}")
            time.sleep(1)

    def pick_node(self, pod: dict) -> tuple[str | None, str | None]:
        """(node, None), or (None, why no node fits) in the scheduler's words."""
        nodes = {n["metadata"]["name"]: n for n in self.kube.get("/api/v1/nodes")["items"]
                 if n["metadata"]["name"] in self.node_names}
        with self.lock:
            placed = list(self.placed.values())
        misfits: dict[str, int] = {}
        fit = []
        for name in self.node_names:
            if name not in nodes:
                continue
            why = self.misfit(pod, nodes[name], nodes, placed)
            if why:
                misfits[why] = misfits.get(why, 0) + 1
            else:
                fit.append(name)
        if not fit:
            return None, f"0/{len(nodes)} nodes are available: " + \
                ", ".join(f"{n} {why}" for why, n in sorted(misfits.items())) + "."
        load = {n: sum(1 for _, _, node in placed if node == n) for n in fit}
        least = [n for n in fit if load[n] == min(load.values())]
        self._turn += 1
        return least[self._turn % len(least)], None

    def misfit(self, pod: dict, node: dict, nodes: dict, placed: list) -> str | None:
        spec = pod["spec"]
        labels = node["metadata"].get("labels") or {}
        if node["spec"].get("unschedulable"):
            return "node(s) were unschedulable"
        if any(labels.get(k) != v for k, v in (spec.get("nodeSelector") or {}).items()):
            return "node(s) didn't match Pod's node affinity/selector"
        affinity = spec.get("affinity") or {}
        required = ((affinity.get("nodeAffinity") or {})
                    .get("requiredDuringSchedulingIgnoredDuringExecution") or {}).get("nodeSelectorTerms")
        if required and not any(node_term_matches(t, node) for t in required):
            return "node(s) didn't match Pod's node affinity/selector"
        md = pod["metadata"]
        for kind, want in (("podAffinity", True), ("podAntiAffinity", False)):
            for term in (affinity.get(kind) or {}).get("requiredDuringSchedulingIgnoredDuringExecution") or []:
                key = term["topologyKey"]
                spaces = term.get("namespaces") or [md["namespace"]]
                matching = [n for ns, pod_labels, n in placed
                            if ns in spaces and selector_matches(term.get("labelSelector"), pod_labels)]
                domains = {(nodes.get(n, {}).get("metadata", {}).get("labels") or {}).get(key) for n in matching}
                here = labels.get(key)
                if want and not matching:
                    # The first of a group: it may go anywhere if it matches its own term.
                    if md["namespace"] in spaces and selector_matches(term.get("labelSelector"), md.get("labels") or {}):
                        continue
                    return "node(s) didn't match pod affinity rules"
                if want and here not in domains:
                    return "node(s) didn't match pod affinity rules"
                if not want and here in domains:
                    return "node(s) didn't match pod anti-affinity rules"
        return None

    # -- volume attachment ------------------------------------------------
    def attach(self, ns: str, claim: str, node: str, uid: str, pod_name: str) -> list[str]:
        """Attach a single-node claim's volume to `node` for a pod: [] when
        done, else the pods that use it on another node (Multi-Attach)."""
        with self.lock:
            a = self.attachments.get((ns, claim))
            if a and a["node"] != node and a["pods"]:
                return sorted(a["pods"].values())
            if not a or a["node"] != node:
                a = self.attachments[(ns, claim)] = {"node": node, "pods": {}}
            a["pods"][uid] = pod_name
            return []

    def detach(self, ns: str, claim: str, uid: str) -> None:
        """A pod that used the claim is done: detach once no pod uses it."""
        with self.lock:
            a = self.attachments.get((ns, claim))
            if a:
                a["pods"].pop(uid, None)
                if not a["pods"]:
                    del self.attachments[(ns, claim)]

    def event(self, pod: dict, type_: str, reason: str, message: str, component: str) -> None:
        md = pod["metadata"]
        t = now()
        try:
            self.kube.request("POST", f"/api/v1/namespaces/{md['namespace']}/events", {
                "apiVersion": "v1", "kind": "Event",
                "metadata": {"name": f"{md['name']}.{uuid.uuid4().hex[:16]}", "namespace": md["namespace"]},
                "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": md["name"],
                                   "namespace": md["namespace"], "uid": md["uid"]},
                "reason": reason, "message": message, "type": type_, "source": {"component": component},
                "firstTimestamp": t, "lastTimestamp": t, "count": 1})
        except ApiError as e:
            log(f"{md['namespace']}/{md['name']}: cannot record event {reason}: {e}")

    # -- pods ----------------------------------------------------------
    def finalize_delete(self, ns: str, name: str, uid: str):
        try:
            self.kube.request("DELETE", f"/api/v1/namespaces/{ns}/pods/{name}", {
                "apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0,
                "preconditions": {"uid": uid}})
        except ApiError as e:
            if e.status not in (404, 409):
                log(f"delete {ns}/{name} failed: {e}")

    def fail_orphan(self, pod: dict):
        md = pod["metadata"]
        try:
            self.kube.merge_patch(f"/api/v1/namespaces/{md['namespace']}/pods/{md['name']}/status", {
                "metadata": {"uid": md["uid"]},
                "status": {"phase": "Failed", "reason": "NodeAgentRestarted",
                           "message": "the node agent restarted while the pod ran"}})
        except ApiError as e:
            log(f"{md['namespace']}/{md['name']}: cannot fail orphan: {e}")

    def index_pod(self, w: PodWorker):
        with self.lock:
            self.by_name[(w.ns, w.pod_name)] = w

    def worker_done(self, w: PodWorker):
        with self.lock:
            self.workers.pop(w.uid, None)
            self.finished.add(w.uid)

    def handle(self, etype: str, pod: dict):
        md, spec = pod["metadata"], pod["spec"]
        uid = md["uid"]
        status = pod.get("status") or {}
        if etype == "DELETED":
            with self.lock:
                self.placed.pop(uid, None)
            w = self.workers.get(uid)
            if w:
                w.request_stop("deleted", pod)
            return
        if not spec.get("nodeName"):
            if not md.get("deletionTimestamp") and not spec.get("schedulingGates") \
                    and status.get("phase") not in TERMINAL:
                self.start_once(f"schedule-{uid}", self.schedule, pod)
            return
        with self.lock:
            if status.get("phase") in TERMINAL:
                self.placed.pop(uid, None)
            else:
                self.placed[uid] = (md["namespace"], md.get("labels") or {}, spec["nodeName"])
        if spec["nodeName"] not in self.node_names:
            return
        with self.lock:
            w = self.workers.get(uid)
            if md.get("deletionTimestamp"):
                if w:
                    w.request_stop("deleted", pod)
                elif uid not in self.finished or status.get("phase") in TERMINAL:
                    threading.Thread(target=self.finalize_delete, args=(md["namespace"], md["name"], uid),
                                     daemon=True).start()
                return
            if w or uid in self.finished or status.get("phase") in TERMINAL:
                return
            if status.get("phase") == "Running":
                # Its processes died with a previous agent: like a node that
                # rebooted, report the pod failed rather than run it twice.
                threading.Thread(target=self.fail_orphan, args=(pod,), daemon=True).start()
                self.finished.add(uid)
                return
            w = PodWorker(self, pod)
            self.workers[uid] = w
            self.by_name[(w.ns, w.pod_name)] = w
        log(f"{md['namespace']}/{md['name']}: starting")
        w.start()

    def watch_pods(self):
        while True:
            try:
                lst = self.kube.get("/api/v1/pods")
                rv = lst["metadata"]["resourceVersion"]
                seen = set()
                for pod in lst["items"]:
                    seen.add(pod["metadata"]["uid"])
                    self.handle("ADDED", pod)
                for uid, w in list(self.workers.items()):
                    if uid not in seen:
                        w.request_stop("deleted")
                with self.lock:
                    for uid in set(self.placed) - seen:
                        del self.placed[uid]
                while True:
                    for ev in self.kube.watch("/api/v1/pods", rv):
                        if ev["type"] == "ERROR":
                            raise ApiError(ev["object"].get("code", 500), json.dumps(ev["object"]))
                        rv = ev["object"]["metadata"]["resourceVersion"]
                        if ev["type"] != "BOOKMARK":
                            self.handle(ev["type"], ev["object"])
            except Exception as e:
                if not (isinstance(e, ApiError) and e.status == 410):
                    log(f"pod watch: {e}; relisting")
                time.sleep(0.5)

    # -- log server ----------------------------------------------------
    def serve_logs(self):
        agent = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt, *a):
                pass

            def do_GET(self):
                u = urllib.parse.urlparse(self.path)
                q = urllib.parse.parse_qs(u.query)
                parts = u.path.strip("/").split("/")
                if parts == ["healthz"]:
                    return self._send(200, b"ok")
                if len(parts) != 4 or parts[0] != "containerLogs":
                    return self._send(404, b"not found (the millrace node agent serves only logs)")
                _, ns, name, cname = parts
                w = agent.by_name.get((ns, name))
                if w:
                    pod_dir = w.dir
                else:  # run by an earlier agent: the newest folder of that name
                    dirs = sorted((agent.root / "pods").glob(f"{ns}_{name}_*"), key=lambda p: p.stat().st_mtime)
                    if not dirs:
                        return self._send(404, f"pod {ns}/{name} is not known to this node".encode())
                    pod_dir = dirs[-1]
                prev = q.get("previous", ["false"])[0] == "true"
                lf = pod_dir / "logs" / (f"{cname}.previous.log" if prev else f"{cname}.log")
                if not lf.exists():
                    return self._send(404, f"no log for container {cname}".encode())
                data = lf.read_bytes()
                tail = q.get("tailLines")
                if tail:
                    n = int(tail[0])
                    lines = data.splitlines(keepends=True)
                    data = b"".join(lines[-n:]) if n > 0 else b""
                limit = q.get("limitBytes")
                if limit:
                    data = data[:int(limit[0])]
                follow = q.get("follow", ["false"])[0] == "true" and not prev and w is not None
                if not follow:
                    return self._send(200, data)
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                try:
                    self._chunk(data)
                    with open(lf, "rb") as f:
                        f.seek(0, 2)
                        while True:
                            chunk = f.read(65536)
                            if chunk:
                                self._chunk(chunk)
                                continue
                            cr = next((c for c in w.inits + w.mains if c.name == cname), None)
                            if w.done or cr is None or (cr.proc is None and "terminated" in cr.state):
                                chunk = f.read()
                                if chunk:
                                    self._chunk(chunk)
                                break
                            time.sleep(0.1)
                    self.wfile.write(b"0\r\n\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def _chunk(self, b: bytes):
                if b:
                    self.wfile.write(f"{len(b):x}\r\n".encode() + b + b"\r\n")
                    self.wfile.flush()

            def _send(self, code, body: bytes):
                self.send_response(code)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        srv = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        srv.daemon_threads = True
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.args.serving_cert, self.args.serving_key)
        if self.args.client_ca:
            ctx.load_verify_locations(self.args.client_ca)
            ctx.verify_mode = ssl.CERT_REQUIRED
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
        threading.Thread(target=srv.serve_forever, name="log-server", daemon=True).start()

    def run(self):
        if self.args.serving_cert and self.port:
            self.serve_logs()
        self.register_nodes()
        threading.Thread(target=self.heartbeat_loop, name="heartbeat", daemon=True).start()
        if self.args.provision:
            threading.Thread(target=self.provision_loop, name="provisioner", daemon=True).start()
        self.watch_pods()

    def shutdown(self, *_):
        log("stopping: killing pod processes")
        for w in list(self.workers.values()):
            for c in w.inits + w.mains:
                if c.proc:
                    try:
                        os.killpg(c.proc.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
        os._exit(0)


def main(argv=None):
    ap = argparse.ArgumentParser(description="millrace test node agent (kubelet stand-in)")
    ap.add_argument("--kubeconfig", required=True)
    ap.add_argument("--node-name", action="append",
                    help="a Node to register and run pods for (repeat for more nodes; default millrace-node)")
    ap.add_argument("--image-path", action="append",
                    help="a folder of this machine that stands for the images' programs (interpreters): "
                         "it stays readable at its path for every container user")
    ap.add_argument("--image", action="append", metavar="IMAGE=ROOT",
                    help="a folder of this machine that stands for one image's programs: a container of "
                         "that image finds ROOT/bin first on its PATH, and ROOT stays readable for every user")
    ap.add_argument("--root", required=True, help="folder for pods, volumes and logs")
    ap.add_argument("--apiserver", help="apiserver URL given to pods (default: the kubeconfig's)")
    ap.add_argument("--port", type=int, default=0, help="kubelet log endpoint port")
    ap.add_argument("--serving-cert")
    ap.add_argument("--serving-key")
    ap.add_argument("--client-ca")
    ap.add_argument("--no-provision", dest="provision", action="store_false",
                    help="do not act as the provisioner of a default StorageClass")
    args = ap.parse_args(argv)
    agent = Agent(args)
    signal.signal(signal.SIGTERM, agent.shutdown)
    signal.signal(signal.SIGINT, agent.shutdown)
    agent.run()


if __name__ == "__main__":
    main()
