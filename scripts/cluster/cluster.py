#!/usr/bin/env python3
"""Start and stop the local Kubernetes control plane used by the cluster tests.

    cluster.py up      start etcd, kube-apiserver, kube-controller-manager and
                       the test node agent (or reuse them if already running)
    cluster.py down    stop them; state (certificates, etcd data) is kept so
                       the next `up` is a warm start
    cluster.py down --purge   stop and delete all state
    cluster.py status  print what runs and where the kubeconfig is
    cluster.py env     print `export KUBECONFIG=...; export PATH=...` lines

Everything listens on 127.0.0.1 only.  State lives in the run directory
(``$MILLRACE_CLUSTER_DIR``, default ``<repo>/.millrace/cluster``):

    pki/            CA, apiserver serving cert, client certs, SA signing key
    etcd/           etcd data
    logs/           one log file per process
    node/           the node agent's pods (volumes, container logs)
    kubeconfig      admin kubeconfig (client certificate in system:masters)
    state.json      ports and process ids

The binaries come from scripts/cluster/build.sh (built from the Go module
proxy, cached under $MILLRACE_CACHE/k8s/<version>/bin).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import fcntl
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
BUILD_SCRIPT = HERE / "build.sh"
NODE_AGENT = REPO / "tests" / "cluster" / "node_agent.py"
NODE_NAME = "millrace-node"
# Two nodes, so that what must stay on one node (a ReadWriteOnce claim's
# pods) is tested; the node agent runs both.
NODE_NAMES = (NODE_NAME, "millrace-node-2")
SERVICE_CIDR = "10.0.0.0/24"
SERVICE_IP = "10.0.0.1"
SA_ISSUER = "https://kubernetes.default.svc.cluster.local"


class ClusterError(RuntimeError):
    pass


def log(msg: str) -> None:
    print(f"[cluster {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run_dir() -> Path:
    return Path(os.environ.get("MILLRACE_CLUSTER_DIR") or REPO / ".millrace" / "cluster")


# ------------------------------------------------------------------ binaries

def bin_dir() -> Path:
    out = subprocess.run(["bash", str(BUILD_SCRIPT), "--print-bin-dir"],
                         check=True, capture_output=True, text=True)
    return Path(out.stdout.strip())


REQUIRED_BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kubectl")


def missing_binaries() -> list[str]:
    b = bin_dir()
    return [n for n in REQUIRED_BINARIES if not os.access(b / n, os.X_OK)]


def ensure_binaries(build: bool = True) -> Path:
    """Return the bin dir, building the binaries if missing.  Raises on failure."""
    missing = missing_binaries()
    if missing and build:
        log(f"binaries missing ({', '.join(missing)}): building them, this takes a while")
        proc = subprocess.run(["bash", str(BUILD_SCRIPT)])
        if proc.returncode != 0:
            raise ClusterError(f"scripts/cluster/build.sh failed with exit code {proc.returncode}")
        missing = missing_binaries()
    if missing:
        raise ClusterError(
            f"control plane binaries missing in {bin_dir()}: {', '.join(missing)} "
            "(run `make cluster-binaries`)")
    return bin_dir()


# ----------------------------------------------------------------------- PKI

def _write_key(path: Path, key) -> None:
    from cryptography.hazmat.primitives import serialization
    path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    path.chmod(0o600)


def _write_cert(path: Path, cert) -> None:
    from cryptography.hazmat.primitives import serialization
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def ensure_pki(pki: Path) -> None:
    """Create the CA and certificates once; later starts reuse them."""
    if (pki / "done").exists():
        return
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    pki.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)
    until = now + datetime.timedelta(days=3650)

    def name(cn: str, org: str | None = None) -> x509.Name:
        attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
        if org:
            attrs.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
        return x509.Name(attrs)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = name("millrace-test-ca")
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now).not_valid_after(until)
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    _write_key(pki / "ca.key", ca_key)
    _write_cert(pki / "ca.crt", ca)

    def issue(stem: str, subject: x509.Name, server: bool, sans=None) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        usage = [ExtendedKeyUsageOID.SERVER_AUTH] if server else [ExtendedKeyUsageOID.CLIENT_AUTH]
        b = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca_name)
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now).not_valid_after(until)
             .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
             .add_extension(x509.ExtendedKeyUsage(usage), critical=False)
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                            critical=False))
        if sans:
            b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        _write_key(pki / f"{stem}.key", key)
        _write_cert(pki / f"{stem}.crt", b.sign(ca_key, hashes.SHA256()))

    dns = ["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
           "kubernetes.default.svc.cluster.local"]
    sans = [x509.DNSName(d) for d in dns] + [
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address(SERVICE_IP))]
    issue("apiserver", name("kube-apiserver"), True, sans)
    issue("admin", name("millrace-admin", "system:masters"), False)
    issue("controller-manager", name("system:kube-controller-manager"), False)
    issue("apiserver-kubelet-client", name("kube-apiserver-kubelet-client", "system:masters"), False)
    issue("node-agent", name("system:node:" + NODE_NAME, "system:nodes"), False)
    issue("kubelet-serving", name(NODE_NAME), True,
          [x509.DNSName(NODE_NAME), x509.DNSName("localhost"),
           x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])

    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write_key(pki / "sa.key", sa_key)
    (pki / "sa.pub").write_bytes(sa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    (pki / "done").write_text("ok\n")


def write_kubeconfig(path: Path, server: str, pki: Path, user: str, cert: str) -> None:
    import base64

    def b64(p: Path) -> str:
        return base64.b64encode(p.read_bytes()).decode()

    cfg = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "millrace", "cluster": {
            "server": server, "certificate-authority-data": b64(pki / "ca.crt")}}],
        "users": [{"name": user, "user": {
            "client-certificate-data": b64(pki / f"{cert}.crt"),
            "client-key-data": b64(pki / f"{cert}.key")}}],
        "contexts": [{"name": "millrace", "context": {
            "cluster": "millrace", "user": user, "namespace": "default"}}],
        "current-context": "millrace",
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(cfg, indent=2))  # JSON is valid YAML
    tmp.chmod(0o600)
    tmp.replace(path)


# ------------------------------------------------------------------- process

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def proc_start(pid: int) -> str | None:
    """The process's start time (clock ticks since boot), None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] == "Z" else fields[19]


def pid_alive(pid: int | None, start: str | None = None) -> bool:
    """Is `pid` alive, and (when `start` is given) still the process we started?"""
    if not pid:
        return False
    now_start = proc_start(pid)
    return now_start is not None and (start is None or now_start == start)


def spawn(name: str, argv: list[str], logs: Path, env: dict | None = None) -> int:
    logs.mkdir(parents=True, exist_ok=True)
    out = open(logs / f"{name}.log", "ab")
    out.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(argv)}\n".encode())
    out.flush()
    proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True, env=env, close_fds=True)
    out.close()
    return proc.pid


def _node_tools() -> Path:
    return Path(os.environ.get("MILLRACE_CACHE", Path.home() / ".cache" / "millrace")) / "node-tools"


def _node_environment() -> dict:
    """The node's programs: the step images' runtimes (bun, deno from `make tools`) join PATH."""
    return {**os.environ, "PATH": f"{_node_tools() / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}


def _image_paths() -> list[str]:
    """Folders that stand for the step images' programs: the runtimes of
    `make tools` and the interpreters on PATH (a pyenv root, if python3 is
    a pyenv shim).  The node agent keeps them readable for any container user."""
    paths = [_node_tools()]
    pyenv = os.environ.get("PYENV_ROOT")
    if pyenv:
        paths.append(Path(pyenv))
    python = Path(sys.base_prefix)
    if not any(python.is_relative_to(p) for p in paths):
        paths.append(python)
    return [str(p) for p in paths if p.exists()]


# The image the cluster tests give SQL steps (spec.runtime.images): Python with the SQL drivers.
SQL_IMAGE = "millrace-test/python-sql:3.12"


def _go_root() -> Path | None:
    """The Go toolchain's root (found as scripts/cluster/build.sh finds go), or None."""
    go = shutil.which("go") or "/usr/local/go/bin/go"
    if not os.access(go, os.X_OK):
        return None
    out = subprocess.run([go, "env", "GOROOT"], capture_output=True, text=True)
    return Path(out.stdout.strip()) if out.returncode == 0 and out.stdout.strip() else None


def _step_images() -> dict[str, Path]:
    """Images whose programs this machine has, and the folder (its bin/ joins PATH) standing for each:
    the default Go image is this machine's Go toolchain, the SQL test image the Python environment
    the control plane is started from (make setup's .venv, which has the SQL drivers)."""
    from millrace.runtime.languages import DEFAULT_IMAGES  # the virtual environment's millrace

    images = {SQL_IMAGE: Path(sys.prefix)}
    go_root = _go_root()
    if go_root is not None:
        images[DEFAULT_IMAGES["go"]] = go_root
    return images


def stop_pid(pid: int | None, name: str, timeout: float = 10) -> None:
    if not pid_alive(pid):
        return
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.1)
    log(f"{name} did not stop in {timeout}s: killing it")
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def load_state() -> dict:
    p = run_dir() / "state.json"
    if p.exists():
        try:
            return json.loads(p.read_text())
        except ValueError:
            return {}
    return {}


def save_state(state: dict) -> None:
    p = run_dir() / "state.json"
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(p)


def _ssl_context(pki: Path, cert: str = "admin") -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    ctx.load_cert_chain(str(pki / f"{cert}.crt"), str(pki / f"{cert}.key"))
    return ctx


def api_get(state: dict, path: str, timeout: float = 3) -> tuple[int, bytes]:
    pki = run_dir() / "pki"
    url = f"https://127.0.0.1:{state['ports']['apiserver']}{path}"
    try:
        with urllib.request.urlopen(url, context=_ssl_context(pki), timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (urllib.error.URLError, OSError):
        return 0, b""


def wait_for(what: str, check, timeout: float, procs: dict) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        for name, pid in procs.items():
            if not pid_alive(pid):
                tail = _tail(run_dir() / "logs" / f"{name}.log")
                raise ClusterError(f"{name} exited while waiting for {what}; its log ends with:\n{tail}")
        time.sleep(0.1)
    raise ClusterError(f"timed out after {timeout}s waiting for {what} (logs in {run_dir() / 'logs'})")


def _parse_time(s: str | None) -> float:
    if not s:
        return 0.0
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def _tail(p: Path, n: int = 30) -> str:
    try:
        return "\n".join(p.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


# ------------------------------------------------------------------ up/down

def is_up(state: dict | None = None, node_agent: bool = True) -> bool:
    state = state if state is not None else load_state()
    pids = state.get("pids") or {}
    names = ["etcd", "kube-apiserver", "kube-controller-manager"] + (["node-agent"] if node_agent else [])
    starts = state.get("pid_starts") or {}
    if not all(pid_alive(pids.get(n), starts.get(n)) for n in names):
        return False
    if node_agent and state.get("nodes") != list(NODE_NAMES):
        return False  # an agent of an older layout: start afresh
    code, _ = api_get(state, "/readyz")
    return code == 200


def info(state: dict | None = None) -> dict:
    state = state if state is not None else load_state()
    rd = run_dir()
    return {
        "run_dir": str(rd),
        "kubeconfig": str(rd / "kubeconfig"),
        "server": f"https://127.0.0.1:{state['ports']['apiserver']}",
        "bin_dir": state.get("bin_dir") or str(bin_dir()),
        "node_name": NODE_NAME,
        "node_names": list(NODE_NAMES),
        "node_dir": str(rd / "node"),
        "logs": str(rd / "logs"),
        "pki": str(rd / "pki"),
    }


def make_run_dir(rd: Path) -> None:
    """The control plane's folder, reachable by the step users the node agent runs pods as: a
    folder above it made private (`millrace run` makes `.millrace` 0700 for its run records)
    gets search permission only, so its contents stay unlisted."""
    rd.mkdir(parents=True, exist_ok=True)
    for folder in [rd, *rd.parents]:
        if folder == REPO or folder == folder.parent:
            break
        mode = folder.stat().st_mode
        if mode & 0o011 != 0o011:
            folder.chmod(mode | 0o011)


@contextlib.contextmanager
def locked():
    """One start or stop at a time (several test sessions may share the tree)."""
    rd = run_dir()
    make_run_dir(rd)
    with open(rd / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def up(node_agent: bool = True, build: bool = True, keep: bool = True) -> dict:
    """Start the control plane or reuse a running one; return info().

    keep=True (``make cluster``) marks it as started by a person: test
    sessions never stop it."""
    with locked():
        i = _up(node_agent, build)
        if keep:
            state = load_state()
            state["auto"] = False
            save_state(state)
        return i


def attach(build: bool = True) -> dict:
    """For a test session: start or reuse the control plane and register as a
    user of it, so that another session does not stop it underneath."""
    with locked():
        state = load_state()
        reuse = bool(state.get("ports")) and is_up(state)
        i = _up(True, build)
        if not reuse:
            state = load_state()
            state["auto"] = True
            save_state(state)
        users = run_dir() / "users"
        users.mkdir(exist_ok=True)
        (users / f"{os.getpid()}-{proc_start(os.getpid())}").write_text("")
        return i


def detach(keep: bool = False) -> None:
    """A test session is done: stop the control plane if a session started it
    and no other session uses it."""
    with locked():
        users = run_dir() / "users"
        me = users / f"{os.getpid()}-{proc_start(os.getpid())}"
        me.unlink(missing_ok=True)
        others = []
        for u in users.glob("*-*") if users.exists() else []:
            pid, _, start = u.name.partition("-")
            if pid_alive(int(pid), start):
                others.append(u)
            else:
                u.unlink(missing_ok=True)
        if not others and load_state().get("auto") and not keep:
            _down()


def _up(node_agent: bool = True, build: bool = True) -> dict:
    t0, wall_start = time.monotonic(), time.time()
    rd = run_dir()
    state = load_state()
    if state.get("ports") and is_up(state, node_agent=node_agent):
        log(f"control plane already running: reusing it ({state['ports']['apiserver']})")
        return info(state)
    if state.get("pids"):
        # Something is half up: stop it and start cleanly (keeping the data).
        _down(purge=False, quiet=True)
        state = load_state()

    bins = ensure_binaries(build=build)
    make_run_dir(rd)
    pki, logs, etcd_data = rd / "pki", rd / "logs", rd / "etcd"
    cold = not (etcd_data / "member").exists()
    ensure_pki(pki)

    ports = state.get("ports") or {}
    taken: set[int] = set()
    for k in ("etcd", "etcd_peer", "apiserver", "kubelet"):
        # Two ports picked one after the other may be the same one: each is checked against the others.
        while not ports.get(k) or ports[k] in taken or not port_free(ports[k]):
            ports[k] = free_port()
        taken.add(ports[k])
    state = {"ports": ports, "pids": {}, "pid_starts": {}, "bin_dir": str(bins), "started": time.time(),
             "nodes": list(NODE_NAMES)}
    save_state(state)
    server = f"https://127.0.0.1:{ports['apiserver']}"
    write_kubeconfig(rd / "kubeconfig", server, pki, "millrace-admin", "admin")
    write_kubeconfig(rd / "controller-manager.kubeconfig", server, pki,
                     "system:kube-controller-manager", "controller-manager")
    write_kubeconfig(rd / "node-agent.kubeconfig", server, pki, "millrace-admin", "admin")
    pids = state["pids"]

    def started(name: str, pid: int) -> None:
        pids[name] = pid
        state["pid_starts"][name] = proc_start(pid)
        save_state(state)

    etcd_url = f"http://127.0.0.1:{ports['etcd']}"
    peer_url = f"http://127.0.0.1:{ports['etcd_peer']}"
    started("etcd", spawn("etcd", [
        str(bins / "etcd"), "--name", "millrace", "--data-dir", str(etcd_data),
        "--listen-client-urls", etcd_url, "--advertise-client-urls", etcd_url,
        "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
        "--initial-cluster", f"millrace={peer_url}", "--initial-cluster-state", "new",
        "--listen-metrics-urls", "", "--log-level", "warn",
        # Test data only: trade durability for speed.
        "--unsafe-no-fsync", "--quota-backend-bytes", str(2 * 1024 ** 3),
        "--snapshot-count", "10000",
    ], logs))

    def etcd_ok() -> bool:
        try:
            with urllib.request.urlopen(f"{etcd_url}/health", timeout=1) as r:
                return b'"true"' in r.read()
        except (urllib.error.URLError, OSError):
            return False

    wait_for("etcd", etcd_ok, 30, {"etcd": pids["etcd"]})

    started("kube-apiserver", spawn("kube-apiserver", [
        str(bins / "kube-apiserver"),
        "--etcd-servers", etcd_url,
        "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
        "--secure-port", str(ports["apiserver"]),
        "--tls-cert-file", str(pki / "apiserver.crt"),
        "--tls-private-key-file", str(pki / "apiserver.key"),
        "--client-ca-file", str(pki / "ca.crt"),
        "--authorization-mode", "Node,RBAC",
        "--service-account-issuer", SA_ISSUER,
        "--service-account-key-file", str(pki / "sa.pub"),
        "--service-account-signing-key-file", str(pki / "sa.key"),
        "--service-cluster-ip-range", SERVICE_CIDR,
        "--kubelet-client-certificate", str(pki / "apiserver-kubelet-client.crt"),
        "--kubelet-client-key", str(pki / "apiserver-kubelet-client.key"),
        "--kubelet-certificate-authority", str(pki / "ca.crt"),
        "--kubelet-preferred-address-types", "InternalIP",
        "--allow-privileged=true",
        # The only endpoint would be 127.0.0.1, which Endpoints refuse.
        "--endpoint-reconciler-type", "none",
        "--profiling=false",
        "--v", "1",
    ], logs))
    wait_for("kube-apiserver /readyz", lambda: api_get(state, "/readyz")[0] == 200, 120,
             {"etcd": pids["etcd"], "kube-apiserver": pids["kube-apiserver"]})
    t_api = time.monotonic() - t0

    started("kube-controller-manager", spawn("kube-controller-manager", [
        str(bins / "kube-controller-manager"),
        "--kubeconfig", str(rd / "controller-manager.kubeconfig"),
        "--authentication-kubeconfig", str(rd / "controller-manager.kubeconfig"),
        "--authorization-kubeconfig", str(rd / "controller-manager.kubeconfig"),
        "--bind-address", "127.0.0.1", "--secure-port", "0",
        "--leader-elect=false",
        "--use-service-account-credentials=true",
        "--service-account-private-key-file", str(pki / "sa.key"),
        "--root-ca-file", str(pki / "ca.crt"),
        "--cluster-signing-cert-file", str(pki / "ca.crt"),
        "--cluster-signing-key-file", str(pki / "ca.key"),
        # Every default controller except the ones that need a cloud or
        # real kubelets: the node agent heartbeats, but pods must never be
        # evicted because a test paused it.
        "--controllers", "*,-node-lifecycle-controller,-node-ipam-controller,"
                         "-persistentvolume-attach-detach-controller",
        "--v", "1",
    ], logs))

    if node_agent:
        started("node-agent", spawn("node-agent", [
            sys.executable, str(NODE_AGENT),
            "--kubeconfig", str(rd / "node-agent.kubeconfig"),
            *[arg for node in NODE_NAMES for arg in ("--node-name", node)],
            *[arg for path in _image_paths() for arg in ("--image-path", path)],
            *[arg for image, root in _step_images().items() for arg in ("--image", f"{image}={root}")],
            "--root", str(rd / "node"),
            "--port", str(ports["kubelet"]),
            "--serving-cert", str(pki / "kubelet-serving.crt"),
            "--serving-key", str(pki / "kubelet-serving.key"),
            "--client-ca", str(pki / "ca.crt"),
            "--apiserver", server,
        ], logs, env=_node_environment()))

    # Pods can be created once the serviceaccount controller made `default`.
    wait_for("the default ServiceAccount (controller-manager)",
             lambda: api_get(state, "/api/v1/namespaces/default/serviceaccounts/default")[0] == 200,
             120, {k: v for k, v in pids.items()})
    if node_agent:
        def node_ready(node: str) -> bool:
            code, body = api_get(state, f"/api/v1/nodes/{node}")
            if code != 200:
                return False
            conds = json.loads(body).get("status", {}).get("conditions") or []
            # A heartbeat from this agent, not one left in etcd by the last.
            return any(c["type"] == "Ready" and c["status"] == "True"
                       and _parse_time(c.get("lastHeartbeatTime")) >= wall_start - 1 for c in conds)
        wait_for(f"nodes {', '.join(NODE_NAMES)} Ready (node agent)",
                 lambda: all(node_ready(n) for n in NODE_NAMES), 60, dict(pids))
    total = time.monotonic() - t0
    state["start_seconds"] = {"apiserver_ready": round(t_api, 2), "total": round(total, 2),
                              "kind": "cold" if cold else "warm"}
    save_state(state)
    log(f"control plane up ({'cold' if cold else 'warm'} start) in {total:.1f}s "
        f"(apiserver ready after {t_api:.1f}s); KUBECONFIG={rd / 'kubeconfig'}")
    return info(state)


def down(purge: bool = False, quiet: bool = False) -> None:
    with locked():
        _down(purge, quiet)


def _down(purge: bool = False, quiet: bool = False) -> None:
    state = load_state()
    pids = state.get("pids") or {}
    starts = state.get("pid_starts") or {}
    for name in ("node-agent", "kube-controller-manager", "kube-apiserver", "etcd"):
        # Only a process we started: after a reboot the pid may be another's.
        if pids.get(name) and pid_alive(pids[name], starts.get(name)):
            stop_pid(pids[name], name)
    if state:
        state["pids"] = {}
        state["pid_starts"] = {}
        save_state(state)
    if purge:
        import shutil
        shutil.rmtree(run_dir(), ignore_errors=True)
    if not quiet:
        log("control plane stopped" + (" and its state deleted" if purge else ""))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p_up = sub.add_parser("up")
    p_up.add_argument("--no-node-agent", action="store_true")
    p_up.add_argument("--no-build", action="store_true", help="fail instead of building missing binaries")
    p_down = sub.add_parser("down")
    p_down.add_argument("--purge", action="store_true", help="also delete certificates and etcd data")
    sub.add_parser("status")
    sub.add_parser("env")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "up":
            i = up(node_agent=not args.no_node_agent, build=not args.no_build)
            print(f"export KUBECONFIG={i['kubeconfig']}")
            print(f"export PATH={i['bin_dir']}:$PATH")
        elif args.cmd == "down":
            down(purge=args.purge)
        elif args.cmd == "status":
            state = load_state()
            running = bool(state.get("ports")) and is_up(state)
            print(json.dumps({"running": running, **(info(state) if state.get("ports") else {}),
                              "pids": state.get("pids"), "last_start": state.get("start_seconds")},
                             indent=2))
            return 0 if running else 1
        elif args.cmd == "env":
            i = info()
            print(f"export KUBECONFIG={i['kubeconfig']}")
            print(f"export PATH={i['bin_dir']}:$PATH")
    except ClusterError as e:
        print(f"cluster: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
